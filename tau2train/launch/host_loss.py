"""A run whose role jobs lose their host stops within a bounded time, with one message naming
the host, the role and the Slurm job.

With slurm.placement=per_role_jobs, AReaL's Slurm scheduler runs each role (rollout, actor) as
a Slurm job of its own, named `<experiment>_<trial>:<role>` (areal/infra/scheduler/slurm.py:164).
It asks Slurm about a role's job only before each call to it (slurm.py:216-257, 1605): a call in
flight to a host that died waits out its HTTP timeout (two hours), and the run hangs. This
process (AReaL's controller) asks Slurm instead, every WATCH_EVERY_S: once a role job it saw
running has left RUNNING (NODE_FAIL, FAILED, CANCELLED, ...) or its node stops answering Slurm
(not responding, down), it raises `HostLost` in the main thread (launch/watch.py); AReaL's
trainer cancels the other role jobs on the way out, and the same command resumes from the last
recover checkpoint once the host is back or the cluster has another node free.
"""

from __future__ import annotations

import contextlib
import signal

from tau2train.launch.role_jobs import RoleJob, role_jobs, slurm_output
from tau2train.launch.watch import RunStopped, Watch, stopping_on

HOST_LOSS_SIGNAL = signal.SIGUSR2
WATCH_EVERY_S = 5.0
# a role job in these states is alive (a job of the trial's roles that ends otherwise is lost)
ALIVE = ("RUNNING", "COMPLETING")
# a node in these states (sinfo %t; "*": not answering slurmctld) has lost its jobs
LOST_NODE_STATES = ("down", "fail", "unk")


class HostLost(RunStopped):
    """A role job's host failed; the message names the host, the role and the Slurm job."""


def node_states(nodelist: str) -> dict[str, str]:
    """{node: sinfo's compact state (idle, alloc*, down*, ...)} of each node of a job's NodeList
    (t2c3, gpu[01-04]); {} when Slurm does not answer."""
    out = slurm_output(["sinfo", "-h", "-N", "-n", nodelist, "-o", "%N|%t"])
    if out is None:
        return {}
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def lost_node(state: str) -> bool:
    """Whether sinfo's compact state says the node's jobs are gone or cannot be reached."""
    return state.endswith("*") or state.rstrip("*~#!%$@^-").startswith(LOST_NODE_STATES)


class RoleJobWatch(Watch):
    """Watches the trial's role jobs; the first lost one ends the watch with its message."""

    def __init__(self, experiment: str, trial: str):
        super().__init__("tau2train-host-watch", WATCH_EVERY_S)
        self.experiment, self.trial = experiment, trial
        self.running: dict[str, RoleJob] = {}  # job id -> the job as last seen running

    def check(self) -> str | None:
        jobs = role_jobs(self.experiment, self.trial, ended=True)
        if jobs is None:
            return None
        listed = {job.job_id: job for job in jobs}
        for job_id, seen in self.running.items():
            now = listed.get(job_id)
            if now is None or now.state not in ALIVE:
                return lost_message(seen, f"its job is {now.state if now else 'gone from the queue'}")
        for job in jobs:
            if job.state not in ALIVE or not job.node:
                continue
            self.running[job.job_id] = job
            lost = {node: state for node, state in node_states(job.node).items() if lost_node(state)}
            if lost:
                node, state = next(iter(lost.items()))
                return lost_message(RoleJob(job.job_id, job.name, job.state, node),
                                    f"Slurm reports {node} {state} (not responding or down)")
        return None


def lost_message(job: RoleJob, why: str) -> str:
    return (f"host {job.node} was lost: the {job.role} role's Slurm job {job.job_id} ({job.name}) ran there, "
            f"and {why}. Training stopped; the run's other jobs are cancelled. Rerun the same command once "
            f"{job.node} is back or the cluster has another node free: it resumes from the last recover "
            "checkpoint (recover.mode=auto; on Slurm the default)")


def stop_on_host_loss(scheduler_type: str, experiment: str, trial: str):
    """While inside (in the main thread), a role job's host lost raises HostLost here. Only
    AReaL's Slurm scheduler runs role jobs; under its local scheduler nothing is watched."""
    if scheduler_type != "slurm":
        return contextlib.nullcontext()
    return stopping_on(RoleJobWatch(experiment, trial), HostLost, HOST_LOSS_SIGNAL)
