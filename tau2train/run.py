"""Entry point: `python -m tau2train.run [-m] [group=choice ...] [key=value ...]`.

Every sweep point is composed and validated before anything is written, started or
submitted; bad input exits with status 2 and one message. Hydra's own verbs
(--help, --cfg job, --info defaults, ...) go straight to Hydra.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tau2train.compose import CONFIG_MODULE, CONFIG_NAME, Composed, compose, sweep_points  # noqa: E402
from tau2train.errors import BAD_INPUT_EXIT_CODE, ConfigError  # noqa: E402
from tau2train.plan import render_plan, write_areal_config  # noqa: E402
from tau2train.schemas import register_configs  # noqa: E402
from tau2train.validate import Layout, validate  # noqa: E402

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
    points = sweep_points(overrides) if multirun else [overrides]
    jobs = []
    for point in points:
        composed = compose(point)
        jobs.append((composed, validate(composed.config)))
    _check_distinct_run_dirs(jobs)
    for composed, _ in jobs:
        if not composed.config.dry_run:
            raise ConfigError(
                "dry_run",
                False,
                "this version of tau2train only plans runs; launching AReaL's trainer "
                "and Slurm submission are not built yet",
                valid="dry_run=true",
                fix="add dry_run=true to see the plan and the AReaL config",
            )
    return jobs


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


def dry_run(composed: Composed, layout: Layout) -> None:
    config_path = write_areal_config(composed.config)
    print(render_plan(composed, layout, config_path))


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
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    for composed, layout in jobs:
        dry_run(composed, layout)


if __name__ == "__main__":
    main()
