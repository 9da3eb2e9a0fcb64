"""`mode=eval`'s report in the tracking run (tracking group): its numbers, and pass^1 beside the
base model and published results; the wandb key stays in the environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tau2train.records.eval_report import EvalReport
from tau2train.reports.leaderboard import comparison_rows
from tau2train.schemas import ExperimentConfig


def track(exp: ExperimentConfig, report: EvalReport, out: Path, base: EvalReport | None = None) -> None:
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
    rows = comparison_rows([report], {base.domain: base} if base else None)
    # pass^1 beside the base model and published results, each row with its source
    run.log({**scalars, "comparison": wandb.Table(columns=rows[0], data=rows[1:])})
    run.summary.update(
        {**scalars, "reward_basis": report.reward_basis, "infra_failures_are": report.infra_failures_are}
    )
    run.finish()
