"""cluster=slurm's checks: its sbatch options, a placement that holds the layout, and shared
storage once the run's jobs may land on several nodes (tau2train.config.placement)."""

from __future__ import annotations

from tau2train.config.clusters import ClusterChecks
from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout, role_key
from tau2train.config.placement import placement, spans_nodes
from tau2train.config.sbatch import check_sbatch_options
from tau2train.schemas import ExperimentConfig, Placement
from tau2train.schemas.modes import facts

SHARED_PATHS_KEY = "slurm.shared_paths"


def check_placement(exp: ExperimentConfig, layout: Layout) -> None:
    """The run's placement (tau2train.config.placement) can hold its layout."""
    n_nodes = exp.cluster.n_nodes
    where = placement(exp.slurm.placement, n_nodes)
    if where is Placement.SINGLE_JOB and n_nodes > 1:
        raise ConfigError(
            "slurm.placement", exp.slurm.placement,
            f"a single job holds one node, and the layout needs cluster.n_nodes={n_nodes}",
            valid="auto or per_role_jobs for a multi-node layout",
            fix="drop slurm.placement (auto), or pick a one-node layout: allocation=n1_sglang_d6_archon_d2",
        )
    if where is Placement.SINGLE_JOB and exp.slurm.container_type != "none":
        raise ConfigError(
            "slurm.container_type", exp.slurm.container_type,
            "a one-node run is one job, and AReaL's local scheduler starts its workers in the job's own "
            "environment: containers apply to AReaL's per-role jobs only",
            valid="none with a one-node layout",
            fix="set slurm.container_type=none and prepare the job's environment with slurm.setup lines",
        )
    if where is Placement.PER_ROLE_JOBS:
        check_whole_nodes(exp, layout)


def check_whole_nodes(exp: ExperimentConfig, layout: Layout) -> None:
    """AReaL's Slurm scheduler gives each role whole nodes and raises once the job runs
    otherwise (areal/infra/scheduler/slurm.py:816: a role's GPUs, world size x GPUs per worker,
    a multiple of cluster.n_gpus_per_node; workers declared without GPUs ask for none)."""
    per_node = exp.cluster.n_gpus_per_node
    if exp.actor.scheduling_spec[0].gpu == 0:
        return
    for role in facts(exp.mode).gpu_roles:
        gpus = getattr(layout, role).parallel.world_size
        if gpus % per_node:
            key, value = role_key(exp, role)
            raise ConfigError(
                key, value,
                f"uses {gpus} GPUs, and AReaL's Slurm scheduler gives each role whole nodes of "
                f"cluster.n_gpus_per_node={per_node} GPUs (it would fail inside the job)",
                valid=f"a multiple of {per_node} GPUs per role: {per_node}, {2 * per_node}, {3 * per_node}, ...",
                fix="resize the roles to whole nodes (e.g. allocation.rollout=sglang:d16 "
                "allocation.actor=archon:d8 on 3 nodes), or fit the layout on one node (one job)",
            )


def nodes_described(exp: ExperimentConfig) -> str:
    return (f"{exp.cluster.n_nodes} nodes" if exp.cluster.n_nodes > 1
            else "slurm.placement=per_role_jobs's jobs, each on a node Slurm picks,")


CHECKS = ClusterChecks(
    settings=check_sbatch_options,
    layout=check_placement,
    spans_nodes=spans_nodes,
    nodes_described=nodes_described,
    shared_paths=lambda exp: (SHARED_PATHS_KEY, list(exp.slurm.shared_paths)),
)
