"""Entry point: `python -m tau2train.run [-m] [group=choice ...] [key=value ...]`.

Every sweep point is composed and validated before anything is written, started or
submitted; bad input exits with status 2 and one message. Hydra's own verbs
(--help, --cfg job, --info defaults, ...) go straight to Hydra.
"""

from __future__ import annotations

import logging
import sys
import time

import hydra
from omegaconf import DictConfig

from tau2train.compose import (
    CONFIG_MODULE,
    CONFIG_NAME,
    Composed,
    compose,
    sweep_points,
    with_trial_names,
)
from tau2train.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.evaluate import render_eval_plan, run_eval
from tau2train.plan import render_plan, write_areal_config
from tau2train.schemas import register_configs
from tau2train.train import run_training
from tau2train.validate import Layout, validate

# Flags that make Hydra print something instead of running the job (--resolve and
# --package only modify --cfg/--help and travel with them).
HYDRA_VERBS = (
    "--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
    "--shell-completion", "-sc", "--version",
)
MULTIRUN_FLAGS = ("-m", "--multirun")


def prepare(argv: list[str]) -> list[tuple[Composed, Layout]]:
    """Compose and validate every job the command line describes."""
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    overrides = [a for a in argv if a not in MULTIRUN_FLAGS]
    points = with_trial_names(sweep_points(overrides)) if multirun else [overrides]
    if multirun:
        points = with_sweep_group(points)
    jobs = []
    for point in points:
        composed = compose(point)
        jobs.append((composed, validate(composed.config)))
    _check_distinct_run_dirs(jobs)
    for composed, _ in jobs:
        exp = composed.config
        if exp.mode == "train" and not exp.dry_run and exp.scheduler.type == "slurm":
            raise ConfigError(
                "cluster",
                "slurm",
                "submitting training to Slurm is not built yet in this version",
                valid="cluster=local (on a machine with the GPUs), or dry_run=true",
                fix="add dry_run=true to see the plan and the AReaL config",
            )
    return jobs


def with_sweep_group(points: list[list[str]]) -> list[list[str]]:
    """One tracking group for all the runs of a sweep (unless the sweep names one)."""
    group = "tracking.group=${experiment_name}-sweep-" + time.strftime("%Y%m%d-%H%M%S")
    if any(o.startswith("tracking.group=") for p in points for o in p):
        return points
    return [[*p, group] for p in points]


def _check_distinct_run_dirs(jobs: list[tuple[Composed, Layout]]) -> None:
    seen: dict[str, list[str]] = {}
    for composed, _ in jobs:
        run_dir = composed.config.run_dir
        if run_dir in seen:
            raise ConfigError(
                "trial_name",
                composed.config.trial_name,
                f"sweep points {seen[run_dir]} and {composed.overrides} would share the run "
                f"directory {run_dir}",
                fix="give each sweep point its own trial_name (e.g. sweep trial_name too)",
            )
        seen[run_dir] = composed.overrides


def dry_run(composed: Composed, layout: Layout | None) -> None:
    if composed.config.mode == "eval":
        print(render_eval_plan(composed.config))
        return
    config_path = write_areal_config(composed.config)
    print(render_plan(composed, layout, config_path))


def launch(composed: Composed, layout: Layout | None) -> None:
    """Run one prepared job in this process."""
    exp = composed.config
    if exp.dry_run:
        dry_run(composed, layout)
    elif exp.mode == "eval":
        run_eval(exp)
    else:
        run_training(exp)


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base=None)
def _hydra_main(cfg: DictConfig) -> None:
    """Only Hydra's printing verbs are routed here, and Hydra answers them without running
    the task; reaching this body means a verb was not one."""
    print(f"error: nothing to run for {sys.argv[1:]}; see --help", file=sys.stderr)
    sys.exit(BAD_INPUT_EXIT_CODE)


def _restore_stdlib_logging() -> None:
    """AReaL's getLogger swaps logging's root and manager for its own, so loggers Hydra
    creates later hang off a root that `logging.config` (Hydra's log set-up) never
    configures, and Hydra's --info output vanishes. Point them back at `logging.root`."""
    logging.Logger.root = logging.root
    logging.Logger.manager = logging.Manager(logging.root)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    register_configs()
    _restore_stdlib_logging()
    if any(a.split("=", 1)[0] in HYDRA_VERBS for a in argv):
        sys.argv = [sys.argv[0], *argv]
        _hydra_main()
        return
    try:
        jobs = prepare(argv)
        for composed, layout in jobs:
            launch(composed, layout)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)


if __name__ == "__main__":
    main()
