"""The `cluster=` backends by name, and the settings a backend adds (`ray`). How a backend
checks, plans and starts a run is its entry in tau2train.config.clusters (checks) and
tau2train.launch.clusters (plan, start or submit)."""

from __future__ import annotations

from dataclasses import dataclass

from tau2train.schemas.declare import POSITIVE, setting

# Ray's own name for "the cluster this machine belongs to" (ray.init(address="auto")): the
# RAY_ADDRESS environment variable, as `ray start --head` prints and KubeRay sets in its pods.
RAY_AUTO_ADDRESS = "auto"
RAY_ADDRESS_ENV = "RAY_ADDRESS"


# the `cluster=` backends (`launcher`'s choices): what each checks is its entry in
# tau2train.config.clusters, how it plans and starts a run its entry in tau2train.launch.clusters
CLUSTERS = ["local", "slurm", "ray"]


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
