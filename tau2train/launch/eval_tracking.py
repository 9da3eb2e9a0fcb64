"""`mode=eval`'s report in the tracking run (tracking group): its numbers, and pass^1 beside the
base model and published results; the wandb key stays in the environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tau2train.launch.eval_results import BASE_NAMES, versus_base
from tau2train.records.eval_report import EvalReport
from tau2train.reports.compare import Comparison, Evaluation
from tau2train.reports.leaderboard import comparison_rows
from tau2train.schemas import ExperimentConfig


def versus_scalars(versus: Comparison | str | None) -> dict:
    """The comparison with the base model, as the run's summary keeps it."""
    if versus is None:
        return {}
    if isinstance(versus, str):
        return {"vs_base/verdict": versus}
    return {"vs_base/pass^1_difference": versus.difference, "vs_base/ci95_low": versus.low,
            "vs_base/ci95_high": versus.high, "vs_base/verdict": versus.verdict(BASE_NAMES),
            "vs_base/solved_only_by_base": versus.solved_only[0],
            "vs_base/solved_only_by_checkpoint": versus.solved_only[1]}


def track(exp: ExperimentConfig, report: EvalReport, out: Path, base: Evaluation | None = None) -> None:
    """Log the report to the tracking run (tracking group); the key stays in the environment."""
    t = exp.tracking
    if t.backend != "wandb" or t.mode == "disabled":
        return
    import wandb

    config = dataclasses.asdict(exp)
    run = wandb.init(
        project=t.project, entity=t.entity, group=t.group, name=exp.trial_name, tags=t.tags,
        notes=t.notes, mode=t.mode, job_type="eval", dir=str(out), config=config,
    )
    scalars = {
        "avg_reward": report.avg_reward,
        "avg_reward_se": report.avg_reward_se,
        "pass^1_se": report.pass_hat_1_se,
        "num_infra_failures": report.num_infra_failures,
        **{f"pass^{k}": v for k, v in report.pass_hat_k.items()},
        **{f"pass@{k}": v for k, v in report.pass_at_k.items()},
    }
    scalars = {k: v for k, v in scalars.items() if v is not None}  # a k no task reached
    rows = comparison_rows([report], {base.report.domain: base.report} if base else None)
    # pass^1 beside the base model and published results, each row with its source (and task set mark)
    run.log({**scalars, "comparison": wandb.Table(columns=rows[0], data=rows[1:])})
    run.summary.update({
        **scalars, **versus_scalars(versus_base(report, out, base)), "reward_basis": report.reward_basis,
        "infra_failures_are": report.infra_failures_are,
        **({"incomplete": report.incomplete} if report.incomplete else {}),
        "task_set": report.task_set.label, "tasks_sha256": report.task_set.tasks_sha256,
        "contract": dataclasses.asdict(report.contract),
    })
    run.finish()
