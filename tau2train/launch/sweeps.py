"""`-m` sweeps: the points of a basic sweep (one job each, each with its own trial name and run
directory, one tracking group), and sweeps a Hydra sweeper plugin drives (Optuna)."""

from __future__ import annotations

import time
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

from tau2train.compat.hydra import expand_sweep
from tau2train.config.checked import Checked
from tau2train.config.compose import (
    CONFIG_NAME,
    compose,
    hydra_context,
    parse_overrides,
)
from tau2train.config.errors import ConfigError
from tau2train.config.overrides import MULTIRUN_FLAGS
from tau2train.launch.clusters import backend
from tau2train.launch.clusters.slurm import launcher_session
from tau2train.launch.endpoints import check_endpoints
from tau2train.launch.jobs import run_sweeper_job
from tau2train.launch.modes import checked, dry_run
from tau2train.records.overrides import split_override

# A Hydra sweeper's points get trial0, trial1, ... (job numbers: unique across its batches).
SWEEPER_TRIAL_NAME = "trial_name=trial${hydra:job.num}"


def prepare(argv: list[str]) -> list[Checked]:
    """Compose and validate every job the command line describes (a `-m` sweep: every point,
    before anything is written, started or submitted)."""
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    overrides = [a for a in argv if a not in MULTIRUN_FLAGS]
    points = with_sweep_group(with_trial_names(sweep_points(overrides))) if multirun else [overrides]
    jobs = [checked(compose(point)) for point in points]
    check_distinct_run_dirs(jobs)
    return jobs


def sweep_points(overrides: list[str]) -> list[list[str]]:
    """Expand `-m` sweep overrides (a=1,2 b=x,y, model=glob(*)) into one override list
    per job, as Hydra's basic sweeper does."""
    with hydra_context():
        parsed = parse_overrides(overrides, GlobalHydra.instance().config_loader())
        return expand_sweep(parsed)


def is_sweep_override(override: str) -> bool:
    """a=1,2 / x=interval(0,1) / model=glob(*): a value for the sweeper to choose."""
    return parse_overrides([override])[0].is_sweep_override()


# Group choices already in the experiment name (tau2-<model>-<domain>): not repeated in trials.
EXPERIMENT_NAME_KEYS = ("model", "domain", "experiment_name")


def with_trial_names(points: list[list[str]]) -> list[list[str]]:
    """Give each sweep point a trial_name derived from what varies across the sweep
    (`econfig.turn_discount=0.9,1.0` -> trial_name=turn_discount0.9, ...), so every job has
    its own run directory under the one experiment. Points that set trial_name keep it."""

    def key_values(point: list[str]) -> dict[str, str]:
        pairs = (split_override(o) for o in point)
        return {key: value for key, value in pairs if value is not None}

    parsed = [key_values(point) for point in points]
    keys = sorted({k for p in parsed for k in p})
    varying = [
        k for k in keys
        if k not in EXPERIMENT_NAME_KEYS and len({p.get(k) for p in parsed}) > 1
    ]
    if not varying or "trial_name" in keys:
        return points
    short = [k.rsplit(".", 1)[-1] for k in varying]
    labels = short if len(set(short)) == len(short) else [k.replace(".", "_") for k in varying]
    named = []
    for point, values in zip(points, parsed):
        parts = [label + _trial_safe(values.get(key, "default")) for key, label in zip(varying, labels)]
        named.append([*point, "trial_name=" + "_".join(parts)])
    return named


def _trial_safe(value: str) -> str:
    # AReaL forbids '-' and '/' in trial names; keep them readable and path-safe.
    value = value.strip("'\"").replace("-", "m")
    return "".join(c for c in value if c.isalnum() or c in "._")


def with_sweep_group(points: list[list[str]]) -> list[list[str]]:
    """One tracking group for all the runs of a sweep (unless the sweep names one)."""
    group = "tracking.group=${experiment_name}-sweep-" + time.strftime("%Y%m%d-%H%M%S")
    if any(key == "tracking.group" and value is not None for p in points for key, value in map(split_override, p)):
        return points
    return [[*p, group] for p in points]


def check_distinct_run_dirs(jobs: list[Checked]) -> None:
    seen: dict[str, list[str]] = {}
    for job in jobs:
        run_dir = job.config.run_dir
        if run_dir in seen:
            raise ConfigError(
                "trial_name",
                job.config.trial_name,
                f"sweep points {seen[run_dir]} and {job.overrides} would share the run "
                f"directory {run_dir}",
                fix="give each sweep point its own trial_name (e.g. sweep trial_name too)",
            )
        seen[run_dir] = job.overrides


def hydra_sweeper(overrides: list[str]) -> str | None:
    """The Hydra sweeper plugin a `-m` command picks (hydra/sweeper=optuna), if not the basic one."""
    chosen = [value for key, value in map(split_override, overrides) if key == "hydra/sweeper" and value is not None]
    return chosen[-1] if chosen and chosen[-1] != "basic" else None


def run_hydra_sweep(overrides: list[str]) -> None:
    """`-m hydra/sweeper=optuna ...`: the sweeper picks each next point from the rewards of
    the last ones, so Hydra drives the sweep and waits for every job (on Slurm too). The
    fixed part is validated now; each point is composed and checked in its own job."""
    fixed = [o for o in overrides if not is_sweep_override(o)]
    job = checked(compose(fixed))
    exp = job.config
    if exp.dry_run:
        dry_run(job)
        print(f"\n(dry run of the fixed settings only: {hydra_sweeper(overrides)} picks the swept "
              "values from the rewards of earlier points)")
        return
    backend(exp).preflight([job])  # e.g. cluster=slurm: no loopback server
    check_endpoints(job)
    extra = [] if any(o.startswith("trial_name=") for o in overrides) else [SWEEPER_TRIAL_NAME]
    extra += backend(exp).sweeper_overrides
    with launcher_session() as hydra:
        hydra.multirun(CONFIG_NAME, run_sweeper_job, [*overrides, *extra], with_log_configuration=False)
    print(f"sweep results: {Path(exp.run_dir).parent}/optimization_results.yaml\n"
          f"report:        python -m tau2train.reports.sweep {Path(exp.run_dir).parent}")
