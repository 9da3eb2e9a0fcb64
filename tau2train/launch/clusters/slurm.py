"""cluster=slurm: submit the composed jobs through our hydra-submitit-launcher launcher
(hydra_plugins/tau2train_slurm_launcher), record them, and say where to follow them."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from hydra.core.plugins import Plugins
from hydra.types import RunMode

from hydra_plugins.tau2train_slurm_launcher.launcher import (
    register as register_launcher,
)
from tau2train.compat.hydra import Hydra, launcher_context
from tau2train.config.checked import Checked
from tau2train.config.compose import CONFIG_NAME, hydra_session
from tau2train.config.endpoints import check_reached_from_slurm
from tau2train.launch.clusters import Backend
from tau2train.launch.endpoints import check_endpoint, endpoints
from tau2train.launch.jobs import run_description, run_submitted_job
from tau2train.launch.plan import slurm_submission
from tau2train.records.job import JobState, now, read_job_record, update_job_record

# Launcher settings that may differ between the points of one array (it shares the rest).
PER_POINT_LAUNCHER_KEYS = ("name", "submitit_folder")


@dataclass
class SubmittedJob:
    job_id: str
    trial_name: str
    run_dir: str
    stdout: str
    stderr: str


def job_arrays(jobs: list[Checked]) -> list[list[Checked]]:
    """A sweep's points grouped by the Slurm job they ask for, in sweep order: one array each
    (an array shares one sbatch script; e.g. a one-node and a multi-node model ask for
    different jobs, as does a sweep over slurm.* settings)."""
    def request(c: Checked) -> str:
        return json.dumps({k: v for k, v in c.launcher.items() if k not in PER_POINT_LAUNCHER_KEYS},
                          sort_keys=True, default=str)

    arrays: dict[str, list[Checked]] = {}
    for composed in jobs:
        arrays.setdefault(request(composed), []).append(composed)
    return list(arrays.values())


@contextmanager
def launcher_session() -> Iterator[Hydra]:
    """Hydra with tau2train's Slurm launcher registered (Hydra instantiates launchers only
    from its plugin registry)."""
    register_launcher()
    with hydra_session() as hydra:
        yield hydra


def _launch(jobs: list[Checked], task_function: Callable, preview: bool) -> list:
    with launcher_session() as hydra:
        master = hydra.compose_config(CONFIG_NAME, list(jobs[0].overrides), run_mode=RunMode.MULTIRUN)
        context = launcher_context(hydra, master)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=task_function, config=master
        )
        launcher.preview = preview
        return launcher.launch([list(c.overrides) for c in jobs], initial_job_idx=0)


def sbatch_preview(jobs: list[Checked], task_function: Callable) -> str:
    """The exact sbatch script `submit` would hand to Slurm for these jobs."""
    return _launch(jobs, task_function, preview=True)[0]


def submit(jobs: list[Checked], task_function: Callable) -> list[SubmittedJob]:
    """Submit the jobs (one array when more than one) and record each in its run dir."""
    submitted = []
    for checked, job in zip(jobs, _launch(jobs, task_function, preview=False)):
        exp = checked.config
        entry = SubmittedJob(job.job_id, exp.trial_name, exp.run_dir, str(job.paths.stdout),
                             str(job.paths.stderr))
        if read_job_record(exp.run_dir).slurm_job_id != job.job_id:  # not started yet
            update_job_record(
                exp.run_dir, **run_description(checked.composed), state=JobState.SUBMITTED, slurm_job_id=job.job_id,
                stdout=entry.stdout, stderr=entry.stderr, submitted_at=now(), started_at=None,
                ended_at=None, error=None,
            )
        submitted.append(entry)
    return submitted


def render_submission(submitted: list[SubmittedJob], sweep_dir: str) -> str:
    first = submitted[0]
    arrays = list(dict.fromkeys(s.job_id.split("_")[0] for s in submitted))
    if len(arrays) > 1:
        how = f" as {len(arrays)} job arrays ({', '.join(arrays)}: one per Slurm request)"
    else:
        how = f" as job array {arrays[0]}" if "_" in first.job_id else ""
    lines = [f"Submitted {len(submitted)} Slurm job(s){how}:"]
    width = max(len(s.trial_name) for s in submitted)
    for s in submitted:
        lines.append(f"  {s.job_id:<10} {s.trial_name:<{width}}  {s.run_dir}")
    lines += [
        f"logs:    {first.stdout}" + (" (one per job)" if len(submitted) > 1 else ""),
        f"follow:  tail -f {first.stdout} {first.stderr}",
        f"queue:   squeue -j {','.join(arrays)}        cancel: scancel {' '.join(arrays)}",
        f"report:  {Path(sys.executable).name} -m tau2train.reports.sweep {sweep_dir}",
    ]
    return "\n".join(lines)


def launch_on_slurm(jobs: list[Checked]) -> None:
    """Submit the jobs (a sweep: one array per Slurm request) and return (a dry run, showing
    each array's sbatch script, is tau2train.launch.preview's)."""
    arrays = job_arrays(jobs)
    # first: a loopback server would answer the probes here, and not the job on its node
    reached_from_slurm(jobs)
    for endpoint in sorted({e for c in jobs for e in endpoints(c)}):  # once per server
        check_endpoint(endpoint)
    submitted = [entry for array in arrays for entry in submit(array, run_submitted_job)]
    print(render_submission(submitted, str(Path(jobs[0].config.run_dir).parent)))


def reached_from_slurm(jobs: list[Checked]) -> None:
    check_reached_from_slurm((c.config, endpoints(c)) for c in jobs)


def preview_script(jobs: list[Checked]) -> str:
    """The sbatch script submitit would write for one array of `jobs` (nothing submitted)."""
    return sbatch_preview(jobs, run_submitted_job)


BACKEND = Backend(
    launch=launch_on_slurm,
    plan_section=slurm_submission,
    preflight=reached_from_slurm,
    script_groups=job_arrays,
    script=preview_script,
    # a sweeper picks each next point from the last ones' rewards: the launcher waits for them
    sweeper_overrides=("hydra.launcher.wait_for_results=true",),
)
