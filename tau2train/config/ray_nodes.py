"""`python -m tau2train.config.ray_nodes nodes|env <address>`: the Ray cluster's nodes as
RayNode JSON lines on stdout. A process of its own, so that the caller bounds it in time
(`ray.init` to an address that does not answer waits for minutes) and its own process never
joins the cluster as a driver (the run joins later, with its workers' setup hook).

`nodes` asks the GCS alone (Ray's GcsClient: no driver, so it answers on any machine that
reaches the head); `env` joins as a driver (only on a node of the cluster: a Ray driver needs
its node's raylet) and runs one zero-CPU task pinned to each alive node, which reports the
versions of tau2train and AReaL that node's Python environment imports."""

from __future__ import annotations

import sys
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version

from tau2train.compat import ray as compat_ray
from tau2train.records.ray_nodes import RayNode

ENV_TIMEOUT_S = 60
GCS_TIMEOUT_S = 20


def installed() -> tuple[str, str]:
    """(tau2train, areal) versions this interpreter has ("" for a missing one)."""
    found = []
    for package in ("tau2train", "areal"):
        try:
            found.append(version(package))
        except PackageNotFoundError:
            found.append("")
    return found[0], found[1]


def ask_env(nodes: list[RayNode]) -> list[RayNode]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(installed)
    refs = {node.ip: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)).remote()
            for node in nodes if node.alive}
    answered = []
    for node in nodes:
        if node.ip not in refs:
            answered.append(node)
            continue
        try:
            tau2train, areal = ray.get(refs[node.ip], timeout=ENV_TIMEOUT_S)
            answered.append(replace(node, tau2train=tau2train, areal=areal))
        except Exception as error:  # noqa: BLE001 - reported per node
            answered.append(replace(node, problem=f"{type(error).__name__}: {error}"[:300]))
    return answered


def gcs_nodes(address: str, timeout_s: float) -> list[RayNode]:
    """Every node the GCS at `address` knows (compat.ray.gcs_nodes: no driver needed)."""
    return [RayNode(ip=node.ip, alive=node.alive, cpus=total.get("CPU", 0.0), gpus=total.get("GPU", 0.0),
                    memory_gb=round(total.get("memory", 0.0) / 2**30, 2), hostname=node.hostname, head=node.head,
                    node_id=node.node_id)
            for node, total in compat_ray.gcs_nodes(address, timeout_s)]


def main(what: str, address: str) -> None:
    nodes = gcs_nodes(address, GCS_TIMEOUT_S)
    if what == "env":
        import ray

        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        nodes = ask_env(nodes)
    for node in nodes:
        print(node.to_json(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
