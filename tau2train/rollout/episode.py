"""One τ² episode, synchronously: tau2's environment, players, orchestrator and evaluator.

Runs in a worker thread (see workflow.py); the LLM calls hop onto the event loop via `Chat`.
A dataset row names what to play (`scenario`): a task of a τ² split of the configured domain
({task_id, split}), or a line of the AReaL-tau2-data RL file, which brings its own domain, its
task and its DB snapshot (tau2train.records.areal_tau2, tau2train.rollout.snapshots)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

from tau2.data_model.simulation import RewardInfo, SimulationRun, TerminationReason
from tau2.data_model.tasks import Task
from tau2.evaluator.evaluator import evaluate_simulation
from tau2.orchestrator.orchestrator import Orchestrator
from tau2.registry import registry
from tau2.utils.utils import get_now

from tau2train.records import areal_tau2
from tau2train.records.episode_failure import Failure
from tau2train.rollout import snapshots
from tau2train.rollout.chat import Chat, EpisodeCancelled, LLMCallFailed
from tau2train.rollout.judge import judged_by
from tau2train.rollout.players import make_players
from tau2train.rollout.reward_terms import RewardContext
from tau2train.rollout.rewards import completion_rewards, evaluation_type, with_reward_basis
from tau2train.rollout.shaping import Shaped, Shaping
from tau2train.schemas import ALL_TASKS, EnvConfig, RunInfo

_TASKS_LOCK = threading.Lock()


class UnknownTask(ValueError):
    """A dataset row names a split or task id tau2 does not have."""


@lru_cache(maxsize=None)
def _tasks(domain: str, split: str) -> dict[str, Task]:
    loader = registry.get_tasks_loader(domain)
    try:
        tasks = loader(None if split == ALL_TASKS else split)
    except (ValueError, KeyError) as e:
        splits = registry.get_task_splits_loader(domain)
        known = sorted(splits()) if splits else []
        raise UnknownTask(
            f"tau2's {domain} domain has no task split {split!r}; "
            f"valid: {', '.join(known + [ALL_TASKS])} ({e})"
        ) from None
    return {task.id: task for task in tasks}


def forget_tasks() -> None:
    """Forget the loaded splits (the process now plays another task set: rollout.tau2_data_dir)."""
    with _TASKS_LOCK:
        _tasks.cache_clear()


def _split(domain: str, split: str) -> dict[str, Task]:
    with _TASKS_LOCK:  # one load per split even when 256 episodes start at once
        return _tasks(domain, split)


def find_task(domain: str, split: str, task_id: str) -> Task:
    """The task `task_id` of `split` (loaded once per process and split)."""
    tasks = _split(domain, split)
    try:
        return tasks[str(task_id)]
    except KeyError:
        sample = ", ".join(list(tasks)[:5])
        raise UnknownTask(
            f"task id {task_id!r} is not in split {split!r} of tau2's {domain} domain "
            f"({len(tasks)} tasks, e.g. {sample})"
        ) from None


def split_tasks(domain: str, split: str, only: list[str] | None = None) -> list[Task]:
    """Every task of `split` ("all" = the whole domain), in tau2's order; `only` those ids when
    given (domain.tasks)."""
    return [task for task in _split(domain, split).values() if only is None or task.id in only]


@dataclass(frozen=True)
class Scenario:
    """What one episode plays: the task, the τ² domain whose tools and policy the players get,
    and the registry name its environments (the episode's and the evaluator's) are built from:
    the domain itself, or its alias on the row's snapshot."""

    task: Task
    domain: str
    environment: str
    # where the task came from, for a row of the AReaL-tau2-data file: "<file>:<line> on <snapshot>"
    source: str | None = None


def row_task(data_file: str, line: int) -> Task:
    """The τ² Task on line `line` of an AReaL-tau2-data RL file (UnknownTask if it is not one)."""
    try:
        return Task.model_validate(areal_tau2.row_task_fields(data_file, line))
    except ValueError as e:  # BadRow, pydantic's ValidationError
        raise UnknownTask(f"{data_file}:{line}: not a usable τ² task: {e}") from None


def scenario(data: dict, econfig: EnvConfig) -> Scenario:
    """The scenario a dataset row names (see the module's docs)."""
    if areal_tau2.is_dataset_row(data):
        domain, db_path = data["domain"], data["db_path"]
        return Scenario(
            task=row_task(data["data_file"], int(data["line"])),
            domain=domain,
            environment=snapshots.environment(domain, db_path, econfig.fast_env),
            source=f"{data['data_file']}:{data['line']} on {db_path}",
        )
    domain = data.get("domain") or econfig.domain  # validation rows of a mixed run name theirs
    task = find_task(domain, data.get("split", "train"), data["task_id"])
    return Scenario(task=task, domain=domain, environment=domain)


@dataclass
class Episode:
    """What one episode produced: tau2's record of it and ours."""

    simulation: SimulationRun
    info: RunInfo
    # Set when the episode failed for a reason outside the agent (user simulator down,
    # evaluator error): its reward says nothing about the policy, so training discards it.
    discard_reason: str | None = None

    @property
    def failure(self) -> Failure | None:
        return Failure(self.info.failure) if self.info.failure else None


def play(
    scene: Scenario,
    split: str,
    econfig: EnvConfig,
    agent_chat: Chat,
    user_chat: Chat | None,
    judge_chat: Chat | None = None,
    shaping: Shaping | None = None,
) -> Episode:
    """Run `scene`'s task to its end and score it with tau2's evaluator, both on environments
    built from `scene.environment` (the gold replay included); a task scored on NL assertions
    is judged by `judge_chat` (tau2train.rollout.judge). `shaping` (default: reward=tau2's)
    makes the rewards AReaL trains on; `info.reward` is tau2's own whatever it is.

    Failures of the agent endpoint propagate (AReaL must reject that trajectory). Every other
    failure (user simulator down, malformed agent output tau2 refuses, evaluator error) ends
    the episode with tau2's AGENT_ERROR/USER_ERROR and is recorded in `info.error`.
    """
    task, domain, solo = scene.task, scene.domain, econfig.solo_mode
    env = registry.get_env_constructor(scene.environment)(solo_mode=solo)
    agent, user = make_players(
        task, domain, env, agent_chat, user_chat, solo, econfig.add_thinking_tool
    )
    orchestrator = Orchestrator(
        domain=domain,
        agent=agent,
        user=user,
        environment=env,
        task=task,
        max_steps=econfig.max_steps_of(domain),
        solo_mode=solo,
    )
    start, started_at = time.perf_counter(), get_now()
    error = discard_reason = failure = None
    try:
        simulation = orchestrator.run()
    except EpisodeCancelled:
        raise
    except LLMCallFailed as e:
        if e.role == "agent":
            raise
        simulation = _ended_by_error(orchestrator, TerminationReason.USER_ERROR, started_at, start)
        error = discard_reason = str(e)
        failure = Failure.USER_SIM
    except Exception as e:  # tau2 refusing what the agent produced, e.g. an empty message
        simulation = _ended_by_error(orchestrator, TerminationReason.AGENT_ERROR, started_at, start)
        error = f"{type(e).__name__}: {e}"
    scored = with_reward_basis(task, econfig.reward_basis_of(domain))
    try:
        with judged_by(judge_chat):
            reward_info = evaluate_simulation(
                simulation=simulation,
                task=scored,
                evaluation_type=evaluation_type(scored),
                solo_mode=solo,
                domain=scene.environment,
            )
    except Exception as e:  # the judge failed or answered nonsense: not the agent's doing
        reward_info = RewardInfo(reward=0.0, info={"note": "evaluation failed"})
        discard_reason = f"evaluation failed: {type(e).__name__}: {e}"
        error = error or discard_reason
        failure = failure or Failure.EVALUATOR
    simulation.reward_info = reward_info
    shaping = shaping or Shaping.of()
    shaped = Shaped(reward_info.reward, []) if discard_reason else shaping.episode(
        RewardContext(scored, simulation, reward_info, tuple(agent_chat.completions), domain))
    info = RunInfo(
        task_id=task.id,
        split=split,
        domain=domain,
        source=scene.source,
        reward=float(reward_info.reward),
        shaped_reward=None if discard_reason else shaped.reward,
        reward_terms=shaped.terms,
        termination_reason=simulation.termination_reason.value,
        duration=simulation.duration,
        agent_latencies=[c.latency for c in agent_chat.completions],
        user_latencies=[c.latency for c in user_chat.completions] if user_chat else [],
        completion_rewards=completion_rewards(agent_chat.completions, shaped.reward, shaping.format_penalty),
        format_problems={c.id: c.problem for c in agent_chat.completions if c.problem},
        messages=[m.model_dump(mode="json", exclude={"raw_data"}) for m in simulation.messages],
        task=task.model_dump(mode="json"),
        reward_info=reward_info.model_dump(mode="json"),
        error=error,
        failure=failure.value if failure else None,
    )
    return Episode(simulation=simulation, info=info, discard_reason=discard_reason)


def _ended_by_error(orchestrator, reason, started_at, start) -> SimulationRun:
    """tau2's record of an episode its orchestrator could not finish."""
    return unfinished_run(orchestrator.task.id, reason, started_at, time.perf_counter() - start,
                          orchestrator.get_trajectory())


def unfinished_run(task_id: str, reason: TerminationReason, started_at: str, duration: float,
                   messages: list | None = None) -> SimulationRun:
    """tau2's record of an episode that ended on an error (reward 0 until scored otherwise)."""
    return SimulationRun(
        id=str(uuid.uuid4()),
        task_id=task_id,
        start_time=started_at,
        end_time=get_now(),
        duration=duration,
        termination_reason=reason,
        reward_info=RewardInfo(reward=0.0),
        messages=messages or [],
    )
