"""What each `cluster=` backend is, as the layers below the launch layer must know it before
anything runs (validation, the user simulator's server): whether a run's processes may run on
other machines than this one, and the settings a backend adds (`ray`). How a backend checks,
plans and starts a run is its entry in tau2train.config.clusters (checks) and
tau2train.launch.clusters (plan, start or submit)."""

from __future__ import annotations

from dataclasses import dataclass

from tau2train.schemas.declare import POSITIVE, setting

# Ray's own name for "the cluster this machine belongs to" (ray.init(address="auto")): the
# RAY_ADDRESS environment variable, as `ray start --head` prints and KubeRay sets in its pods.
RAY_AUTO_ADDRESS = "auto"
RAY_ADDRESS_ENV = "RAY_ADDRESS"


@dataclass(frozen=True)
class ClusterFacts:
    # one line: where a run's processes go
    summary: str
    # a layout may span several nodes (cluster.n_nodes > 1)
    multi_node: bool
    # a run's processes may run on machines other than this one: its paths must be on shared
    # storage and the servers its episodes talk to reachable from there
    runs_elsewhere: bool


CLUSTER_FACTS = {
    "local": ClusterFacts("in this process; AReaL's local scheduler starts the workers on this machine",
                          multi_node=False, runs_elsewhere=False),
    "slurm": ClusterFacts("submitted to Slurm through hydra-submitit-launcher", multi_node=True, runs_elsewhere=True),
    "ray": ClusterFacts("in this process as the Ray driver; AReaL's Ray scheduler places the workers on an "
                        "existing Ray cluster's nodes", multi_node=True, runs_elsewhere=True),
}
CLUSTERS = list(CLUSTER_FACTS)


def cluster_facts(launcher: str) -> ClusterFacts:
    """The facts of `launcher` (a value outside CLUSTERS reads as local: validation refuses it by name)."""
    return CLUSTER_FACTS.get(launcher, CLUSTER_FACTS["local"])


@dataclass
class RaySpec:
    """The Ray cluster a run joins (used with cluster=ray)."""

    address: str = setting(RAY_AUTO_ADDRESS, "The Ray cluster to join: its head's GCS address, host:port (what "
        "`ray start --head --port` listens on, 6379 by default), or auto: the RAY_ADDRESS environment variable "
        "(set in KubeRay's pods). Ray Client addresses (ray://...) are not supported: the run is a driver on a "
        "machine of the cluster's network.")
    connect_timeout_s: float = setting(10.0, "How long validation waits for the Ray cluster to answer (a TCP "
        "connection to the head, then its node list).", range=POSITIVE)
    shared_paths: list[str] = setting(help="Directories every Ray node shares (shared storage mounted at the "
        "same path), so cluster.fileroot and cluster.name_resolve.nfs_record_root may lie under them even where "
        "they look node-local (/tmp, ...).", factory=list)
    check_nodes: bool = setting(True, "Before anything starts, run a task on every alive node that checks its "
        "Python environment carries tau2train and the pinned AReaL (a few seconds).")
