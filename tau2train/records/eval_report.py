"""An evaluation's report (`eval/<...>/metrics.json`), typed: what `mode=eval` writes and every
report (leaderboard submission, pass^1 by step, the sweep report, the base-model comparison)
reads. The file keeps its JSON keys; a file written by an older tau2train (keys missing) reads
with those fields empty, and keys this version does not know are ignored."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNKNOWN_TASK_SET = "unknown (not a released τ² task file)"
# Marks an infrastructure failure in its simulation's reward_info.info (results.json).
INFRA_ERROR_KEY = "infrastructure_error"
# An evaluation's causes of failures outside the agent: those of training
# (tau2train.records.episode_failure), and the endpoint under test failing (an HTTP error, a
# wrong URL).
AGENT_ENDPOINT = "agent_endpoint"


@dataclass(frozen=True)
class InfraFailure:
    """An episode that failed outside the agent (user simulator, endpoint, timeout, evaluator)."""

    task_id: str
    trial: int
    error: str
    cause: str = ""  # a Failure's value or AGENT_ENDPOINT ("": not recorded)


@dataclass(frozen=True)
class TaskSet:
    """Which τ² task file the domain's tasks came from (the files carry no version)."""

    tasks_sha256: str = ""
    label: str = UNKNOWN_TASK_SET

    def describe(self) -> str:
        """How every report names the set: its label and the start of its content hash."""
        return f"{self.label}, sha256 {self.tasks_sha256[:12] or 'not recorded'}"


@dataclass(frozen=True)
class EvaluatedCheckpoint:
    path: str
    step: int | None = None


@dataclass(frozen=True)
class LeaderboardFields:
    """What the τ²-bench leaderboard submission needs that the run's numbers do not say."""

    model_name: str = ""
    model_organization: str | None = None
    submitting_organization: str | None = None
    contact_email: str | None = None
    submission_type: str = "standard"


@dataclass(frozen=True)
class EvalReport:
    domain: str
    split: str
    agent_model: str
    num_tasks: int
    num_tasks_in_domain: int = 0  # 0: not recorded (files before the leaderboard fields)
    num_trials: int = 1
    reward_basis: str = ""
    avg_reward: float | None = None
    avg_reward_se: float | None = None
    pass_hat_1_se: float | None = None
    # k (a string, as in JSON) -> pass^k / pass@k; None where no task had k scored trials
    pass_hat_k: dict[str, float | None] = field(default_factory=dict)
    pass_at_k: dict[str, float | None] = field(default_factory=dict)
    num_episodes: int = 0
    num_scored_episodes: int = 0
    num_tasks_scored: dict[str, int] = field(default_factory=dict)
    num_infra_failures: int = 0
    infra_failures_are: str = ""
    infra_failures: list[InfraFailure] = field(default_factory=list)
    agent_errors: list[str] = field(default_factory=list)
    user_simulator: str = ""
    evaluated_on: str = ""
    tau2_package: str = ""
    task_set: TaskSet = field(default_factory=TaskSet)
    modified_prompts: bool = False
    checkpoint: EvaluatedCheckpoint | None = None
    leaderboard: LeaderboardFields = field(default_factory=LeaderboardFields)
    # why the numbers cannot stand (too many episodes failed outside the agent); None: complete
    incomplete: str | None = None

    @property
    def pass1(self) -> float | None:
        return self.pass_hat_k.get("1")

    @property
    def step(self) -> int | None:
        """The training step of the evaluated checkpoint (None: an endpoint, or no step)."""
        return self.checkpoint.step if self.checkpoint else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalReport:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["infra_failures"] = [InfraFailure(**f) for f in values.get("infra_failures", [])]
        values["task_set"] = TaskSet(**values.get("task_set") or {})
        if values.get("checkpoint"):
            values["checkpoint"] = EvaluatedCheckpoint(**values["checkpoint"])
        values["leaderboard"] = LeaderboardFields(**values.get("leaderboard") or {})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_eval_report(path: str | Path) -> EvalReport:
    """The report in a metrics.json file; ValueError when it is not one (OSError: unreadable)."""
    try:
        return EvalReport.from_json(json.loads(Path(path).read_text()))
    except (TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not an evaluation report: {error}") from None
