"""cluster=local's checks: one machine, so a layout of one node."""

from __future__ import annotations

from tau2train.config.clusters import ClusterChecks
from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout
from tau2train.schemas import ExperimentConfig


def check_one_node(exp: ExperimentConfig, layout: Layout) -> None:
    if exp.cluster.n_nodes != 1:
        raise ConfigError(
            "cluster.n_nodes",
            exp.cluster.n_nodes,
            f"cluster=local runs on one node, but the allocation "
            f"({exp.rollout.backend} + {exp.actor.backend}) is planned for {exp.cluster.n_nodes} nodes",
            valid="1 with cluster=local",
            fix="use cluster=slurm or cluster=ray for multi-node layouts, or a one-node layout: "
            "allocation=n1_sglang_d6_archon_d2",
        )


CHECKS = ClusterChecks(layout=check_one_node)
