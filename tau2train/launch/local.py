"""Running one prepared job in this process: its dry run (plan and AReaL config), training, or
an evaluation."""

from __future__ import annotations

from tau2train.config.compose import Composed
from tau2train.launch.evaluate import render_eval_plan, run_eval
from tau2train.launch.plan import render_plan, write_areal_config
from tau2train.launch.train import run_training


def dry_run(composed: Composed) -> None:
    if composed.config.mode == "eval":
        print(render_eval_plan(composed.config))
        return
    config_path = write_areal_config(composed.config)
    print(render_plan(composed, config_path))


def run_here(composed: Composed) -> None:
    """Run one prepared job in this process."""
    exp = composed.config
    if exp.dry_run:
        dry_run(composed)
    elif exp.mode == "eval":
        run_eval(exp)
    else:
        run_training(exp)
