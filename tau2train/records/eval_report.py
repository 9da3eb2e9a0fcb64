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


# The value of a contract term no metrics.json recorded (written before tau2train recorded it).
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class TaskSelection:
    """Which of the split's tasks were scored: all of them, or a subset chosen by domain.tasks,
    eval.task_ids or eval.num_tasks (a quick look: never a leaderboard number)."""

    of_split: int = 0  # the split's tasks (0: not recorded)
    ids_sha256: str = ""  # sha256 of the scored task ids, sorted, one per line
    subset_by: str = ""  # the keys that chose a subset; "": every task of the split

    @property
    def subset(self) -> bool:
        return bool(self.subset_by)

    def describe(self, num_tasks: int) -> str:
        if not self.ids_sha256:
            return NOT_RECORDED
        which = f"a subset, {num_tasks} of the split's {self.of_split} ({self.subset_by})" if self.subset \
            else f"all {num_tasks} of the split"
        return f"{which}, ids sha256 {self.ids_sha256[:12]}"


@dataclass(frozen=True)
class EvalContract:
    """What an evaluation's scores depend on besides the agent under test. Two evaluations'
    numbers compare, and stand together in one submission, only when their contracts agree
    (tau2train-compare and tau2train-submission refuse otherwise, naming each difference)."""

    split: str = ""
    task_set: TaskSet = field(default_factory=TaskSet)
    tasks: TaskSelection = field(default_factory=TaskSelection)
    user_simulator: str = ""  # its model name; "none (solo mode)" without one
    user_simulator_args: dict[str, Any] | None = None  # econfig.user_llm_args ({}: none)
    # the model folder the user-simulator server (tau2train-user-sim) serves and its fingerprint
    # (records.checkpoints.model_fingerprint), or why there is none
    user_simulator_checkpoint: str = ""
    judge: str = ""  # the NL-assertion judge's model, or "none"
    reward_basis: str = ""
    agent_sampling: dict[str, Any] | None = None  # eval.gen_args ({}: the endpoint's defaults)
    max_steps: int | None = None
    modified_prompts: bool = False  # tau2train's agent prompt is tau2's plus a `think` tool
    tau2_package: str = ""
    tau2train_version: str = ""


# Contract terms that do not change scores by themselves: shown where they differ, never refused.
NOTED_TERMS = ("tau2train_version",)
CONTRACT_TERMS = tuple(f.name for f in dataclasses.fields(EvalContract))


def term_text(contract: EvalContract, term: str, num_tasks: int) -> str:
    """How a contract's term reads (in a plan, and in a refused comparison); `num_tasks`: the
    tasks scored."""
    value = getattr(contract, term)
    if term == "task_set":
        return value.describe() if value.tasks_sha256 else NOT_RECORDED
    if term == "tasks":
        return value.describe(num_tasks)
    if value in ("", None):
        return NOT_RECORDED
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _compared(contract: EvalContract, term: str) -> Any:
    """What of a term tells two contracts apart (a task set by its hash, not its label)."""
    value = getattr(contract, term)
    if term == "task_set":
        return value.tasks_sha256
    if term == "tasks":
        return value.ids_sha256, value.of_split
    return value


@dataclass(frozen=True)
class TermDifference:
    term: str
    a: str
    b: str


def contract_differences(a: EvalReport, b: EvalReport, terms: tuple[str, ...] = CONTRACT_TERMS) -> list[TermDifference]:
    """The terms of `terms` on which the two reports' contracts differ."""
    return [
        TermDifference(term, term_text(a.contract, term, a.num_tasks), term_text(b.contract, term, b.num_tasks))
        for term in terms
        if _compared(a.contract, term) != _compared(b.contract, term)
    ]


@dataclass(frozen=True)
class Training:
    """What the evaluated checkpoint was trained on, read from the training runs' directories
    (tau2train's checkpoints only): each stage, newest first, and the evaluated domain's tasks
    its RL episodes played."""

    stages: list[str] = field(default_factory=list)  # e.g. "RL (GRPO): 12 steps on tau2/mock split all, from ..."
    trained_tasks: list[str] = field(default_factory=list)  # task ids of the domain played in training
    overlap: list[str] = field(default_factory=list)  # scored tasks among them

    def warning(self, num_tasks: int) -> str | None:
        """What the plan, the report and metrics.json say when the scored tasks were trained on."""
        if not self.overlap:
            return None
        shown = ", ".join(self.overlap[:8]) + (", ..." if len(self.overlap) > 8 else "")
        return (f"{len(self.overlap)} of the {num_tasks} scored tasks were played in this checkpoint's training "
                f"({shown}): their scores measure what it learned on them, not how it generalises")


@dataclass(frozen=True)
class EvalReport:
    domain: str
    agent_model: str
    num_tasks: int
    contract: EvalContract = field(default_factory=EvalContract)
    num_tasks_in_domain: int = 0  # 0: not recorded (files before the leaderboard fields)
    num_trials: int = 1
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
    evaluated_on: str = ""
    checkpoint: EvaluatedCheckpoint | None = None
    training: Training | None = None  # None: not a tau2train checkpoint (an endpoint, a base model)
    leaderboard: LeaderboardFields = field(default_factory=LeaderboardFields)
    # why the numbers cannot stand (too many episodes failed outside the agent); None: complete
    incomplete: str | None = None
    # the scored tasks that were played in training (Training.warning); None: none were
    trained_tasks_warning: str | None = None

    @property
    def split(self) -> str:
        return self.contract.split

    @property
    def task_set(self) -> TaskSet:
        return self.contract.task_set

    @property
    def reward_basis(self) -> str:
        return self.contract.reward_basis

    @property
    def user_simulator(self) -> str:
        return self.contract.user_simulator

    @property
    def tau2_package(self) -> str:
        return self.contract.tau2_package

    @property
    def modified_prompts(self) -> bool:
        return self.contract.modified_prompts

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
        values["contract"] = _contract(data)
        if values.get("checkpoint"):
            values["checkpoint"] = EvaluatedCheckpoint(**values["checkpoint"])
        if values.get("training"):
            values["training"] = Training(**values["training"])
        values["leaderboard"] = LeaderboardFields(**values.get("leaderboard") or {})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _contract(data: dict[str, Any]) -> EvalContract:
    """The contract of a metrics.json; one written before tau2train recorded contracts had
    its split, task set, basis, user simulator and tau2 package at the top level."""
    terms = dict(data.get("contract") or {k: data[k] for k in CONTRACT_TERMS if k in data})
    terms["task_set"] = TaskSet(**terms.get("task_set") or {})
    terms["tasks"] = TaskSelection(**terms.get("tasks") or {})
    return EvalContract(**terms)


def read_eval_report(path: str | Path) -> EvalReport:
    """The report in a metrics.json file; ValueError when it is not one (OSError: unreadable)."""
    try:
        return EvalReport.from_json(json.loads(Path(path).read_text()))
    except (TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not an evaluation report: {error}") from None
