"""Entry point: `python -m tau2train.run [-m] [group=choice ...] [key=value ...]`.

Every sweep point is composed and validated before anything is written, started or
submitted; bad input exits with status 2 and one message. Hydra's own verbs
(--help, --cfg job, --info defaults, ...) go straight to Hydra.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from hydra_plugins.tau2train_slurm_launcher import register as register_launcher
from omegaconf import DictConfig

from tau2train.compose import (
    CONFIG_MODULE,
    CONFIG_NAME,
    Composed,
    compose,
    hydra_session,
    is_sweep_override,
    sweep_points,
    to_composed,
    with_trial_names,
)
from tau2train.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.evaluate import check_endpoints, check_reachable, endpoints, render_eval_plan, run_eval
from tau2train.job_record import now, read_job_record, run_description, update_job_record
from tau2train.plan import render_plan, write_areal_config
from tau2train.schemas import register_configs
from tau2train.slurm import check_one_array, render_submission, sbatch_preview, slurm_job_id, submit
from tau2train.sweep_report import run_reward
from tau2train.train import run_training
from tau2train.validate import Layout, validate

# Flags that make Hydra print something instead of running the job (--resolve and
# --package only modify --cfg/--help and travel with them).
HYDRA_VERBS = (
    "--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
    "--shell-completion", "-sc", "--version",
)
MULTIRUN_FLAGS = ("-m", "--multirun")
# A Hydra sweeper's points get trial0, trial1, ... (job numbers: unique across its batches).
SWEEPER_TRIAL_NAME = "trial_name=trial${hydra:job.num}"


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


def launch_on_slurm(jobs: list[tuple[Composed, Layout]]) -> None:
    """Submit the jobs (a sweep: one array) and return; a dry run shows the sbatch script."""
    composed = [c for c, _ in jobs]
    check_one_array(composed)  # before a dry run writes anything
    if composed[0].config.dry_run:
        for c, layout in jobs:
            dry_run(c, layout)
        print("\nsbatch script (made by hydra-submitit-launcher/submitit; not submitted):\n")
        print(sbatch_preview(composed, run_submitted_job))
        return
    for key, url in sorted({e for c in composed for e in endpoints(c.config)}):  # once per server
        check_reachable(key, url)
    submitted = submit(composed, run_submitted_job)
    print(render_submission(submitted, str(Path(composed[0].config.run_dir).parent)))


def run_submitted_job(cfg: DictConfig) -> str:
    """What each job Hydra launches runs (a Slurm job through hydra-submitit-launcher, or a
    point of a Hydra sweeper's sweep): record it and run it; returns its run directory.
    A requeued job runs it again with the same overrides."""
    composed = to_composed(cfg)
    run_dir = composed.config.run_dir
    starts = read_job_record(run_dir).get("starts", 0) + 1  # more than 1 after a requeue
    update_job_record(run_dir, **run_description(composed), state="running", slurm_job_id=slurm_job_id(),
                      started_at=now(), ended_at=None, error=None, starts=starts)
    try:
        launch(composed, None)
    except SystemExit:
        # submitit's checkpoint hook requeued this job (preempted or timed out)
        update_job_record(run_dir, state="requeued", ended_at=now())
        raise
    except BaseException as error:
        update_job_record(run_dir, state="failed", ended_at=now(), error=f"{type(error).__name__}: {error}")
        raise
    update_job_record(run_dir, state="completed", ended_at=now())
    return run_dir


def run_sweeper_job(cfg: DictConfig) -> float | None:
    """A Hydra sweeper's job: run it, and hand the sweeper the reward it optimises."""
    return run_reward(Path(run_submitted_job(cfg)))


def hydra_sweeper(overrides: list[str]) -> str | None:
    """The Hydra sweeper plugin a `-m` command picks (hydra/sweeper=optuna), if not the basic one."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra/sweeper=")]
    return chosen[-1] if chosen and chosen[-1] != "basic" else None


def run_hydra_sweep(overrides: list[str]) -> None:
    """`-m hydra/sweeper=optuna ...`: the sweeper picks each next point from the rewards of
    the last ones, so Hydra drives the sweep and waits for every job (on Slurm too). The
    fixed part is validated now; each point is composed and checked in its own job."""
    fixed = [o for o in overrides if not is_sweep_override(o)]
    composed = compose(fixed)
    exp = composed.config
    layout = validate(exp)
    if exp.dry_run:
        dry_run(composed, layout)
        print(f"\n(dry run of the fixed settings only: {hydra_sweeper(overrides)} picks the swept "
              "values from the rewards of earlier points)")
        return
    check_endpoints(exp)
    extra = [] if any(o.startswith("trial_name=") for o in overrides) else [SWEEPER_TRIAL_NAME]
    if exp.scheduler.type == "slurm":
        extra.append("hydra.launcher.wait_for_results=true")
    with hydra_session() as hydra:
        hydra.multirun(CONFIG_NAME, run_sweeper_job, [*overrides, *extra], with_log_configuration=False)
    print(f"sweep results: {Path(exp.run_dir).parent}/optimization_results.yaml\n"
          f"report:        python -m tau2train.sweep_report {Path(exp.run_dir).parent}")


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
    register_launcher()
    _restore_stdlib_logging()
    if any(a.split("=", 1)[0] in HYDRA_VERBS for a in argv):
        sys.argv = [sys.argv[0], *argv]
        _hydra_main()
        return
    try:
        if any(a in MULTIRUN_FLAGS for a in argv) and hydra_sweeper(argv):
            run_hydra_sweep([a for a in argv if a not in MULTIRUN_FLAGS])
            return
        jobs = prepare(argv)
        if jobs[0][0].config.scheduler.type == "slurm":
            launch_on_slurm(jobs)
        else:
            for composed, layout in jobs:
                launch(composed, layout)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)


if __name__ == "__main__":
    main()
