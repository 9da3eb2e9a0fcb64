"""What Slurm's queue says about jobs, in one `squeue` call. submitit's own watcher asks
sacct, which clusters without accounting storage (the tests' one among them) do not have.
Light on purpose: the sweep report and the user-sim launcher use it without AReaL."""

from __future__ import annotations

import shutil
import subprocess

# States of a job that will not run (again) and whose processes are gone; `squeue -t all` still
# lists them for MinJobAge. The one list: the sweep report, the user-sim launcher and the
# stale-record check all read it.
SLURM_ENDED = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "REVOKED",
})


def slurm_states(job_ids: list[str], with_reason: bool = False) -> tuple[dict[str, str] | None, str]:
    """{job id: state} (with_reason: "state reason") for the jobs Slurm still knows, array
    tasks as <array>_<index>; or None and why when Slurm can't be asked (a busy controller
    is not a dead job)."""
    if not job_ids:
        return {}, ""
    if shutil.which("squeue") is None:
        return None, "squeue not found"
    fmt = "%i %T %r" if with_reason else "%i %T"
    cmd = ["squeue", "-h", "-r", "-t", "all", "-o", fmt, "-j", ",".join(job_ids)]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"squeue failed ({type(e).__name__})"
    if done.returncode != 0:
        # One id alone that Slurm has forgotten is an error; several are just not listed.
        if "Invalid job id" in done.stderr:
            return {}, ""
        return None, "squeue failed: " + (done.stderr.strip().splitlines() or ["?"])[0]
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.strip().partition(" ")
        if state:
            states[job_id] = state
    return states, ""
