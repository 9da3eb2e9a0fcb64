"""The modes tau2train runs (`mode=`), one entry each: the checks that validate it, the plan its
dry run prints (and the config it writes), and its run. What the layers below must know of a
mode before anything runs (the roles it gives GPUs, its experiment name's suffix) is in
tau2train.schemas.modes; a new mode is an entry there and one here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tau2train.config import validate as checks
from tau2train.config.checked import Checked
from tau2train.config.compose import Composed
from tau2train.launch.clusters import backend
from tau2train.launch.evaluate import eval_plan, run_eval
from tau2train.launch.plan import train_plan
from tau2train.launch.recipe import check_recipe, recipe_plan, run_recipe
from tau2train.launch.sft import run_sft, sft_plan
from tau2train.launch.train import run_training
from tau2train.rollout.tau2_data_dir import use as use_task_set
from tau2train.schemas import ExperimentConfig, Mode


@dataclass(frozen=True)
class ModeEntry:
    check: Callable[[Composed], Checked]  # the mode's own checks (tau2train.config.validate)
    plan: Callable[[Checked], str]  # the dry run's plan, after writing what the run would read
    run: Callable[[Checked], Any]


MODES: dict[Mode, ModeEntry] = {
    Mode.TRAIN: ModeEntry(checks.check_train, train_plan, run_training),
    Mode.SFT: ModeEntry(checks.check_sft, sft_plan, run_sft),
    Mode.EVAL: ModeEntry(checks.check_eval, eval_plan, run_eval),
    Mode.RECIPE: ModeEntry(check_recipe, recipe_plan, run_recipe),
}


def entry(exp: ExperimentConfig) -> ModeEntry:
    return MODES[Mode(exp.mode)]


def checked(composed: Composed) -> Checked:
    """`composed`, validated once (ConfigError on the first problem): what every later step reads."""
    return checks.validate(composed, lambda c: entry(c.config).check(c))


def plan(checked: Checked) -> str:
    """The mode's plan, after writing what its run would read, and its cluster backend's
    section (on Slurm: the job it would submit)."""
    use_task_set(checked.config.econfig)  # the plan reads the tasks the run would play
    text = entry(checked.config).plan(checked)
    section = backend(checked.config).plan_section
    return text + "\n\n" + section(checked) if section else text


def dry_run(checked: Checked) -> None:
    print(plan(checked))


def run_here(checked: Checked) -> None:
    """Run one validated job in this process: its dry run, or the mode's run."""
    use_task_set(checked.config.econfig)  # tau2 reads econfig.tau2_data_dir in this process from here on
    if checked.config.dry_run:
        dry_run(checked)
    else:
        entry(checked.config).run(checked)
