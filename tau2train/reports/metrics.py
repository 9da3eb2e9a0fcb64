"""The numbers an evaluation reports, from its episodes: pass^k, pass@k, average reward ± SE.

Success is tau2's (`is_successful`: reward 1 within 1e-6) and pass^k is tau2's own
`pass_hat_k` (Yao et al., τ-bench) per task, averaged over tasks. pass@k is its counterpart
(Chen et al., Codex): the chance that at least one of k trials drawn from a task's n
succeeds, 1 − C(n−c, k)/C(n, k) — the AReaL τ² paper reports pass@4.

Episodes that failed for infrastructure reasons (the user simulator or the agent endpoint
erroring, the episode timing out, the evaluator raising) say nothing about the agent: by
default they are left out, so a task with n of its trials left counts in pass^k/pass@k for
k ≤ n only, and they are listed apart. `count_as_wrong=True` scores them 0 instead. Either
way the report says which.

The standard error of the average reward treats tasks as the independent units (trials of
one task are correlated): the cluster-robust SE of the mean over episodes, which for equal
trials per task is the sample standard deviation of the task means over √tasks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from tau2train.records.eval_report import InfraFailure

EXCLUDED = "excluded"
COUNTED_AS_WRONG = "counted as reward 0"


@dataclass(frozen=True)
class Outcome:
    """One episode as the metrics see it."""

    task_id: str
    trial: int
    reward: float
    # why the episode failed outside the agent; None for an episode that ran to its end
    infra_error: str | None = None
    infra_cause: str = ""  # what failed (InfraFailure.cause)


def pass_at_k(num_trials: int, success_count: int, k: int) -> float:
    """P(at least one success among k of a task's trials drawn without replacement)."""
    if num_trials < k:
        raise ValueError(f"Number of trials {num_trials} is less than k {k}.")
    return 1.0 - math.comb(num_trials - success_count, k) / math.comb(num_trials, k)


def scored_outcomes(outcomes: list[Outcome], count_as_wrong: bool = False) -> list[Outcome]:
    """The episodes the numbers count: infrastructure failures left out, or scored 0."""
    return [
        Outcome(o.task_id, o.trial, 0.0) if o.infra_error is not None else o
        for o in outcomes
        if count_as_wrong or o.infra_error is None
    ]


def summarize(outcomes: list[Outcome], num_trials: int, count_as_wrong: bool = False) -> dict:
    """The report's numbers (EvalReport's fields of that name; k as a string, as in JSON)."""
    from tau2.metrics.agent_metrics import is_successful, pass_hat_k  # pandas: only when scoring

    failures = [o for o in outcomes if o.infra_error is not None]
    scored = scored_outcomes(outcomes, count_as_wrong)
    by_task: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in scored:
        by_task[outcome.task_id].append(outcome)
    pass_hat, pass_at, tasks_counted = {}, {}, {}
    for k in range(1, num_trials + 1):
        counted = [(len(o), sum(is_successful(x.reward) for x in o)) for o in by_task.values() if len(o) >= k]
        tasks_counted[str(k)] = len(counted)
        pass_hat[str(k)] = _mean([pass_hat_k(n, c, k) for n, c in counted])
        pass_at[str(k)] = _mean([pass_at_k(n, c, k) for n, c in counted])
    rewards = [o.reward for o in scored]
    solved = {t: [Outcome(t, o.trial, float(is_successful(o.reward))) for o in g] for t, g in by_task.items()}
    return {
        "avg_reward": _mean(rewards),
        "avg_reward_se": _clustered_se(by_task, len(rewards)),
        "pass_hat_1_se": _clustered_se(solved, len(rewards)),
        "pass_hat_k": pass_hat,
        "pass_at_k": pass_at,
        "num_episodes": len(outcomes),
        "num_scored_episodes": len(scored),
        "num_tasks_scored": tasks_counted,
        "num_infra_failures": len(failures),
        "infra_failures_are": COUNTED_AS_WRONG if count_as_wrong else EXCLUDED,
        "infra_failures": [InfraFailure(o.task_id, o.trial, o.infra_error, o.infra_cause) for o in failures],
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _clustered_se(by_task: dict[str, list[Outcome]], total: int) -> float | None:
    """Cluster-robust standard error of the mean reward, tasks as clusters."""
    groups = len(by_task)
    if groups < 2:
        return None
    mean = sum(o.reward for o in (x for g in by_task.values() for x in g)) / total
    spread = sum((sum(o.reward for o in g) - len(g) * mean) ** 2 for g in by_task.values())
    return math.sqrt(spread * groups / (groups - 1)) / total
