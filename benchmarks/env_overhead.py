"""Per-episode τ² environment cost, stock constructor vs tau2train.rollout.fast_env, in the same run.

    python benchmarks/env_overhead.py [domain ...] [--tasks N] [--repeats R]

One episode = what RL pays per rollout outside the LLMs: build the domain environment, set
its initial state, replay the task's gold actions through it (the agent's tool calls), then
tau2's own `evaluate_simulation` (EvaluationType.ALL), which builds and replays two more
environments and compares their DB hashes. Episodes alternate stock / fast task by task, so
drift in machine load hits both alike; the rewards of both are checked to be identical.
Goal: fast median <= 15 ms on airline (>= 10x less than stock).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loguru import logger

logger.disable("tau2")  # per-call debug logging of tool responses is not what we measure

from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage
from tau2.data_model.simulation import SimulationRun, TerminationReason
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
from tau2.registry import registry

from tau2train.rollout import fast_env

GOAL_MS = 15.0


def gold_episode(domain: str, task):
    """Set up, replay the gold actions as the agent's tool calls, evaluate; returns RewardInfo."""
    env = registry.get_env_constructor(domain)()
    initial = task.initial_state
    history = list(initial.message_history or []) if initial else []
    env.set_state(
        initialization_data=initial.initialization_data if initial else None,
        initialization_actions=initial.initialization_actions if initial else None,
        message_history=history,
    )
    messages = list(history)
    for index, action in enumerate(task.evaluation_criteria.actions or []):
        call = ToolCall(id=f"call_{index}", name=action.name, arguments=action.arguments,
                        requestor=action.requestor)
        message_type = UserMessage if action.requestor == "user" else AssistantMessage
        messages.append(message_type(role=action.requestor, tool_calls=[call]))
        messages.append(env.get_response(call))
    info = task.evaluation_criteria.communicate_info or []
    messages.append(AssistantMessage(role="assistant", content=" ".join(info) or "Done."))
    run = SimulationRun(id="bench", task_id=task.id, start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason.AGENT_STOP, messages=messages)
    return evaluate_simulation(run, task, EvaluationType.ALL, solo_mode=False, domain=domain)


def timed(domain: str, task) -> tuple[float, object]:
    start = time.perf_counter()
    result = gold_episode(domain, task)
    return (time.perf_counter() - start) * 1e3, result


def bench(domain: str, max_tasks: int | None, repeats: int) -> None:
    tasks = registry.get_tasks_loader(domain)()[:max_tasks]
    start = time.perf_counter()
    fast_env.install(domain)  # one-off per process: loads the DB once
    install_ms = (time.perf_counter() - start) * 1e3
    stock_ms, fast_ms, mismatches = [], [], 0
    for task in tasks:
        fast_env.uninstall(domain)
        ms, stock_result = timed(domain, task)
        stock_ms.append(ms)
        fast_env.install(domain)
        for _ in range(repeats):
            ms, fast_result = timed(domain, task)
            fast_ms.append(ms)
        keys = ("reward", "db_check", "reward_breakdown")
        if [getattr(stock_result, k) for k in keys] != [getattr(fast_result, k) for k in keys]:
            mismatches += 1
    stock, fast = statistics.median(stock_ms), statistics.median(fast_ms)
    print(f"{domain}: {len(tasks)} tasks, gold-replay episodes (set-up + replay + evaluate_simulation)")
    print(f"  stock median: {stock:8.1f} ms   (p90 {statistics.quantiles(stock_ms, n=10)[-1]:.1f})")
    print(f"  fast  median: {fast:8.1f} ms   (p90 {statistics.quantiles(fast_ms, n=10)[-1]:.1f},"
          f" {repeats} per task)")
    print(f"  ratio stock/fast: {stock / fast:.1f}x   one-off install(): {install_ms:.0f} ms")
    print(f"  results identical to stock: {len(tasks) - mismatches}/{len(tasks)} tasks")
    if domain == "airline":
        print(f"  goal fast median <= {GOAL_MS} ms: {'met' if fast <= GOAL_MS else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("domains", nargs="*", default=["airline", "retail"])
    parser.add_argument("--tasks", type=int, default=None, help="first N tasks per domain (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="fast episodes per task")
    args = parser.parse_args()
    for domain in args.domains:
        bench(domain, args.tasks, args.repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of this process: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
