"""Where a run goes: one entry per cluster backend, as modes have one entry each
(tau2train/launch/modes.py). `cluster=<name>` (conf/cluster/<name>.yaml) sets `launcher`, and
`backend(exp)` is that backend's entry: how validated jobs are run or submitted, what a run's
plan adds for it, what a dry run previews of its submission, and what a Hydra sweeper's
multirun needs from it. The launch side reads these, never the backend's name.

A backend is a module here defining `BACKEND`, listed in BACKENDS, plus its conf/cluster/ file;
its checks before anything starts live in tau2train/config (validation may not import launch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tau2train.config.checked import Checked
from tau2train.schemas import ExperimentConfig


def _nothing(jobs: list[Checked]) -> None:
    return None


def _no_scripts(jobs: list[Checked]) -> list[list[Checked]]:
    return []


@dataclass(frozen=True)
class Backend:
    """One cluster backend, as the launch side uses it."""

    # run or submit the validated jobs (one, or a sweep's points); returns once they run or are submitted
    launch: Callable[[list[Checked]], None]
    # the section a run's plan ends with (the job it would submit), if any
    plan_section: Callable[[Checked], str] | None = None
    # a dry run's submission scripts: the jobs grouped as they would be submitted ...
    script_groups: Callable[[list[Checked]], list[list[Checked]]] = _no_scripts
    # ... and each group's script, as the submitting library writes it
    script: Callable[[list[Checked]], str] | None = None
    # overrides a Hydra sweeper's multirun adds (it must wait for each point's result)
    sweeper_overrides: tuple[str, ...] = field(default=())
    # how a `-m` sweep's points run, in its dry run's words (a backend submitting scripts says
    # how it groups them instead)
    sweep_order: str = "run one after another on this machine"
    # what the cluster must be found able to do before a job starts (ConfigError if not): a
    # Hydra sweeper's multirun calls it once, on the fixed settings
    preflight: Callable[[list[Checked]], None] = _nothing


def backends() -> dict[str, Backend]:
    """Every backend by its `launcher` name (imported on use: Slurm's loads submitit)."""
    from tau2train.launch.clusters import local, ray, slurm

    return {"local": local.BACKEND, "slurm": slurm.BACKEND, "ray": ray.BACKEND}


def backend(exp: ExperimentConfig) -> Backend:
    return backends()[exp.launcher]
