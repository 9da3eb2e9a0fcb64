"""A run whose workers lose their host stops within a bounded time, with one message naming
the host, the role and the Slurm job (cluster=slurm) or Ray workers (cluster=ray).

With slurm.placement=per_role_jobs, AReaL's Slurm scheduler runs each role (rollout, actor) as
a Slurm job of its own, named `<experiment>_<trial>:<role>` (areal/infra/scheduler/slurm.py:164).
It asks Slurm about a role's job only before each call to it (slurm.py:216-257, 1605): a call in
flight to a host that died waits out its HTTP timeout (two hours), and the run hangs. This
process (AReaL's controller) asks Slurm instead, every WATCH_EVERY_S: once a role job it saw
running has left RUNNING (NODE_FAIL, FAILED, CANCELLED, ...) or its node stops answering Slurm
(not responding, down), it raises `HostLost` in the main thread (launch/watch.py); AReaL's
trainer cancels the other role jobs on the way out, and the same command resumes from the last
recover checkpoint once the host is back or the cluster has another node free.

With scheduler.type=ray (cluster=ray), AReaL's RayScheduler runs each worker as a Ray actor
named by its role ("actor/0", "rollout/0", "proxy-rollout/0", ...). AReaL 1.0.4 notices a lost
actor host (WorkerFailedError within seconds of a failed call) but not a lost rollout host: its
rollout loop retries forever. `RayNodeWatch` asks Ray's GCS instead, every WATCH_EVERY_S, from
this process (the Ray driver; tau2train.compat.ray): once a node that ran one of this driver's
job's actors is dead in the GCS (Ray's health checks declare a lost node dead ~30 s after it
went), or those actors are DEAD because their node died, it raises `HostLost` naming the host
and the role; a GCS silent for RAY_HEAD_SILENT_S is a lost head. AReaL's trainer deletes the
other workers (and the rollout proxies) on the way out.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable

from tau2train.compat import ray as ray_state
from tau2train.compat.ray import GcsUnanswered, RayActor, RayNode
from tau2train.launch.role_jobs import RoleJob, role_jobs, slurm_output
from tau2train.launch.watch import RunStopped, Watch, stopping_on

HOST_LOSS_SIGNAL = signal.SIGUSR2
WATCH_EVERY_S = 5.0
# a role job in these states is alive (a job of the trial's roles that ends otherwise is lost)
ALIVE = ("RUNNING", "COMPLETING")
# a node in these states (sinfo %t; "*": not answering slurmctld) has lost its jobs
LOST_NODE_STATES = ("down", "fail", "unk")
# a GCS that answers no query this long is a lost head (Ray's own driver gives up on it at 60 s:
# gcs_rpc_server_reconnect_timeout_s); each query is bounded by RAY_QUERY_TIMEOUT_S
RAY_HEAD_SILENT_S = 30.0
RAY_QUERY_TIMEOUT_S = 5.0
RAYLET_CONNECT_TIMEOUT_S = 2.0
FORKED_ROLE_PREFIXES = ("proxy-", "eval-")  # proxy-eval-rollout/0 is of the rollout role


class HostLost(RunStopped):
    """A host of the run's workers failed; the message names the host, the role and its Slurm
    job or Ray workers."""


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


class RayNodeWatch(Watch):
    """Watches the nodes that run this Ray driver's job's actors (AReaL's workers, named by role);
    the first one lost ends the watch with its message. The Ray queries are constructor
    arguments (tests give their own); the real ones are tau2train.compat.ray's."""

    def __init__(self, experiment: str = "", trial: str = "", *,
                 driver: Callable[[], tuple[str, str] | None] = ray_state.driver,
                 nodes: Callable[[float], list[RayNode]] = ray_state.nodes,
                 actors: Callable[[str, float], list[RayActor]] = ray_state.job_actors,
                 raylet_answers: Callable[[str, int, float], bool] = ray_state.raylet_answers,
                 clock: Callable[[], float] = time.monotonic):
        # (experiment and trial: HOST_WATCHES' signature; the trial's workers are this driver's
        # job's actors, which name them)
        super().__init__("tau2train-ray-host-watch", WATCH_EVERY_S)
        self.driver, self.nodes, self.actors, self.raylet_answers = driver, nodes, actors, raylet_answers
        self.clock = clock
        self.placed: dict[str, RayActor] = {}  # actor name -> the actor as last seen alive and placed
        self.known: dict[str, RayNode] = {}  # node id -> the node as the GCS last listed it
        self.answered_at: float | None = None  # when the GCS last answered (None: not asked yet)

    def check(self) -> str | None:
        """After a failure of the run (`stopped` set: stopping_on asks once more), a silent GCS is
        a lost head at once, and a watched node whose raylet does not answer is lost (the GCS
        takes ~30 s to say so; AReaL's WorkerFailedError for a lost actor host comes first)."""
        driver = self.driver()
        if driver is None:  # AReaL's scheduler has not connected this process to Ray yet
            return None
        job_id, gcs = driver
        failed = self.stopped.is_set()
        now = self.clock()
        try:
            listed = self.nodes(RAY_QUERY_TIMEOUT_S)
            actors = self.actors(job_id, RAY_QUERY_TIMEOUT_S)
        except GcsUnanswered as why:
            self.answered_at = now if self.answered_at is None else self.answered_at
            silent = now - self.answered_at
            return head_lost_message(self.head(gcs), gcs, silent, str(why)) if failed or silent > RAY_HEAD_SILENT_S else None
        self.answered_at = now
        self.known = {node.node_id: node for node in listed}
        latest: dict[str, RayActor] = {}
        for actor in actors:
            if actor.name and (actor.name not in latest or actor.started >= latest[actor.name].started):
                latest[actor.name] = actor
        for seen in self.placed.values():
            node, actor = self.known.get(seen.node_id), latest.get(seen.name)
            if node is not None and not node.alive:
                return self.lost(node, "Ray's GCS reports its node dead (missed health checks)")
            if actor is not None and actor.node_died and actor.node_id == seen.node_id:
                return self.lost(node or _unlisted(seen), "Ray reports its actors dead with their node")
        for name, actor in latest.items():
            if actor.state == ray_state.ALIVE and actor.node_id:
                self.placed[name] = actor
            elif actor.state == "DEAD":  # ended on purpose (or crashed): AReaL's to report
                self.placed.pop(name, None)
        if failed:
            for node_id in dict.fromkeys(actor.node_id for actor in self.placed.values()):
                node = self.known.get(node_id)
                if node is not None and not self.raylet_answers(node.ip, node.raylet_port, RAYLET_CONNECT_TIMEOUT_S):
                    return self.lost(node, f"its raylet at {node.ip}:{node.raylet_port} does not answer")
        return None

    def lost(self, node: RayNode, why: str) -> str:
        # each role before its forks: actor/0, rollout/0, eval-rollout/0, proxy-rollout/0
        names = sorted((actor.name for actor in self.placed.values() if actor.node_id == node.node_id),
                       key=lambda name: (name.count("-"), name))
        return ray_lost_message(node, names, why)

    def head(self, gcs: str) -> str:
        """The head as the GCS last listed it (hostname and IP), else the GCS address's host."""
        heads = [node for node in self.known.values() if node.head and node.alive]
        return host_name(heads[0]) if heads else gcs.rsplit(":", 1)[0]


def _unlisted(actor: RayActor) -> RayNode:
    return RayNode(actor.node_id, actor.ip, "", False, 0, False)


def host_name(node: RayNode) -> str:
    """'t2c3 (10.77.0.13)': the node's hostname as Ray knows it, and its IP."""
    return f"{node.hostname} ({node.ip})" if node.hostname and node.hostname != node.ip else node.ip


def actor_role(name: str) -> str:
    """The AReaL role an actor serves: "rollout" for rollout/0 and for the workers AReaL adds to
    that role, eval-rollout/0, proxy-rollout/0 and proxy-eval-rollout/0 (RolloutController's
    evaluation copy and the forked proxies)."""
    role = name.split("/", 1)[0]
    for prefix in FORKED_ROLE_PREFIXES:
        role = role.removeprefix(prefix)
    return role


def ray_lost_message(node: RayNode, names: list[str], why: str) -> str:
    roles = list(dict.fromkeys(actor_role(name) for name in names))
    which = (f"the {roles[0]} role's" if len(roles) == 1
             else f"the {', '.join(roles[:-1])} and {roles[-1]} roles'")
    return (f"host {host_name(node)} was lost: {which} Ray workers ({', '.join(names)}) ran there, and {why}. "
            "Training stopped; the run's other Ray workers are deleted. Rerun the same command once "
            f"{node.hostname or node.ip} is back or the cluster has room: it resumes from the last recover "
            "checkpoint (recover.mode=auto)")


def head_lost_message(head: str, gcs: str, silent_s: float, why: str) -> str:
    return (f"the Ray head {head} was lost: its GCS at {gcs} has not answered for {silent_s:.0f} s ({why}). "
            "Training stopped. Rerun the same command once the head is back (a lost head is a lost "
            "cluster: start Ray again there) or on another Ray cluster with room: it resumes from the "
            "last recover checkpoint (recover.mode=auto)")


# scheduler.type -> the watch of the hosts its workers run on (AReaL's local scheduler: none)
HOST_WATCHES: dict[str, Callable[[str, str], Watch]] = {"slurm": RoleJobWatch, "ray": RayNodeWatch}


def stop_on_host_loss(scheduler_type: str, experiment: str, trial: str):
    """While inside (in the main thread), a lost host of the run's workers raises HostLost here:
    AReaL's Slurm scheduler's role jobs (RoleJobWatch), its Ray scheduler's actors
    (RayNodeWatch); under its local scheduler nothing is watched."""
    watch = HOST_WATCHES.get(scheduler_type)
    if watch is None:
        return contextlib.nullcontext()
    return stopping_on(watch(experiment, trial), HostLost, HOST_LOSS_SIGNAL)
