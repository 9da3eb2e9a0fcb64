"""What validation asks of each cluster backend, one entry per backend as the launch side has
one (tau2train.launch.clusters): its settings' checks, what a training layout needs on it, and
where its processes run (whether node-local paths must be refused). The entry of `exp` is
`cluster_checks(exp)`; validation reads the entry, never the backend's name.

Checks that need the cluster itself (Slurm's node list, a Ray cluster's nodes) run when the run
is launched, in the launch side's entry: a dry run composes and plans offline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tau2train.config.gpu_layout import Layout
from tau2train.schemas import ExperimentConfig


def _nothing(exp: ExperimentConfig, *args) -> None:
    return None


def _never(exp: ExperimentConfig) -> bool:
    return False


@dataclass(frozen=True)
class ClusterChecks:
    """One cluster backend, as validation uses it."""

    # the backend's own settings, for every mode (names and options it passes on)
    settings: Callable[[ExperimentConfig], None] = _nothing
    # a layout the mode runs on GPUs (its node count, how the backend places the roles)
    layout: Callable[[ExperimentConfig, Layout], None] = _nothing
    # whether the run's processes may run on several nodes (a node-local path is then refused)
    spans_nodes: Callable[[ExperimentConfig], bool] = _never
    # the nodes that need shared storage, in words ("3 nodes", ...)
    nodes_described: Callable[[ExperimentConfig], str] = lambda exp: f"{exp.cluster.n_nodes} nodes"
    # (key, directories) the backend states are shared by every node; None: the run's paths
    # stay on this machine (no shared storage needed)
    shared_paths: Callable[[ExperimentConfig], tuple[str, list[str]]] | None = None

    @property
    def runs_elsewhere(self) -> bool:
        """A run's processes may run on machines other than this one: its paths must be on
        storage they all see."""
        return self.shared_paths is not None


def backend_checks() -> dict[str, ClusterChecks]:
    """Every backend's checks by its `launcher` name."""
    from tau2train.config import local_checks, ray_checks, slurm_checks

    return {"local": local_checks.CHECKS, "slurm": slurm_checks.CHECKS, "ray": ray_checks.CHECKS}


def cluster_checks(exp: ExperimentConfig) -> ClusterChecks:
    """The checks of `exp`'s backend (an unknown launcher: local's; validation refuses it by name)."""
    checks = backend_checks()
    return checks.get(exp.launcher, checks["local"])
