"""The Slurm jobs AReaL's Slurm scheduler submits for a trial's roles (slurm.placement=
per_role_jobs), as squeue lists them: AReaL names them `<experiment>_<trial>:<role>`
(areal/infra/scheduler/slurm.py:164). Read by the controller's host-loss watch
(launch/host_loss.py) and by its clean-up of jobs an earlier controller left (launch/trainer.py).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

SLURM_TIMEOUT_S = 30  # one squeue/sinfo/scancel call; one that does not answer counts as no answer


@dataclass(frozen=True)
class RoleJob:
    """One role's Slurm job, as squeue lists it."""

    job_id: str
    name: str  # <experiment>_<trial>:<role>
    state: str  # RUNNING, NODE_FAIL, ...
    node: str  # its NodeList (one node per role on the layouts tau2train ships per role)

    @property
    def role(self) -> str:
        return self.name.rsplit(":", 1)[1]


def slurm_output(argv: list[str]) -> str | None:
    """A Slurm client command's output; None when it fails or does not answer in time."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SLURM_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def role_jobs(experiment: str, trial: str, *, ended: bool) -> list[RoleJob] | None:
    """This user's role jobs of the trial: queued or running ones, and with `ended` those Slurm
    still lists after they ended too (NODE_FAIL, CANCELLED, ...); None when Slurm does not answer."""
    out = slurm_output(["squeue", "-h", "--me", *(["-t", "all"] if ended else []), "-o", "%i|%j|%T|%N"])
    if out is None:
        return None
    prefix = f"{experiment}_{trial}:"
    jobs = [RoleJob(*line.split("|", 3)) for line in out.splitlines() if line.count("|") == 3]
    return [job for job in jobs if job.name.startswith(prefix)]
