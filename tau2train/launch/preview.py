"""A dry run's output (`dry_run=true`): the plan of its first job in full (every job writes what
its run would read all the same), on Slurm the sbatch script of each job array, and, for a `-m`
sweep, one table of its points last: what each sets, its run directory, its Slurm job and its
GPUs."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tau2train.config.checked import Checked
from tau2train.config.placement import eval_server_gpus
from tau2train.launch.clusters import backend
from tau2train.launch.modes import plan
from tau2train.reports.sweep import parse_overrides, varying_keys
from tau2train.reports.tables import align
from tau2train.schemas import ExperimentConfig
from tau2train.schemas.modes import facts


def preview(jobs: list[Checked]) -> None:
    """Print what the validated `jobs` would do; nothing is started or submitted."""
    plans = [plan(job) for job in jobs]  # each writes its own run's files
    print(plans[0])
    if len(jobs) > 1:
        print(f"\n(the plan of point 1; {len(jobs) - 1} more point(s) in the table below, each planned alone by "
              f"`{Path(sys.executable).name} -m tau2train.run dry_run=true <its overrides>`)")
    cluster = backend(jobs[0].config)
    arrays = cluster.script_groups(jobs)
    for number, array in enumerate(arrays, 1):
        which = f": array {number} in the table below" if len(jobs) > 1 else ""
        print(f"\nsbatch script of {len(array)} job(s){which} "
              "(made by hydra-submitit-launcher/submitit; not submitted):\n")
        print(cluster.script(array))
    if len(jobs) > 1:
        print("\n" + "\n".join(sweep_table(jobs, arrays)))


def sweep_table(jobs: list[Checked], arrays: list[list[Checked]]) -> list[str]:
    """One row per point: the overrides that differ between points, its run directory, its Slurm
    job (<array>_<index> as the scripts above are numbered; a lone job: its number) and its GPUs."""
    points = [parse_overrides(list(job.overrides)) for job in jobs]
    keys = varying_keys(points)
    root = jobs[0].config.cluster.fileroot
    slurm = {id(job): f"{n}_{i}" if len(a) > 1 else str(n) for n, a in enumerate(arrays, 1) for i, job in enumerate(a)}
    head = ["#", *keys.values(), f"run directory (under {root})", *(["Slurm job"] if arrays else []),
            "GPUs (nodes x per node)"]
    rows = [[str(number), *(point.get(key, "-") for key in keys), run_dir(job.config, root),
             *([slurm[id(job)]] if arrays else []), gpus(job.config)]
            for number, (job, point) in enumerate(zip(jobs, points), 1)]
    where = slurm_requests(arrays) if arrays else backend(jobs[0].config).sweep_order
    return [f"Sweep of {len(jobs)} points (dry run: nothing was started or submitted): {where}",
            *align([head, *rows])]


def slurm_requests(arrays: list[list[Checked]]) -> str:
    """'2 job arrays, one per distinct Slurm request (sbatch scripts above)', and the like."""
    counts = {"job array": sum(len(a) > 1 for a in arrays), "single job": sum(len(a) == 1 for a in arrays)}
    kinds = " and ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items() if n)
    each = ", one per distinct Slurm request" if len(arrays) > 1 else ""
    return f"{kinds}{each} (sbatch script{'s' if len(arrays) > 1 else ''} above; Slurm job: <array>_<index>)"


def run_dir(exp: ExperimentConfig, root: str) -> str:
    path = Path(exp.run_dir)
    return str(path.relative_to(root)) if path.is_relative_to(root) else shlex.quote(str(path))


def gpus(exp: ExperimentConfig) -> str:
    """The GPUs a point's run holds: its layout's nodes, or a checkpoint evaluation's server."""
    if facts(exp.mode).gpu_roles:
        if exp.trainer.cpu_only:
            return "none (trainer.cpu_only)"
        return f"{exp.cluster.n_nodes} x {exp.cluster.n_gpus_per_node}"
    served = eval_server_gpus(exp)
    return f"1 x {served}" if served else "none (an endpoint's evaluation)"
