"""cluster=ray, when the run starts: the Ray cluster answers, has room for every role's
workers, and its nodes' Python environments carry this tau2train and AReaL. Each problem is
one ConfigError naming ray.address (or the role that does not fit). Every wait is bounded: a
TCP connection to the head first (`ray.init` to an address nobody answers waits for minutes),
then the node list from a process of its own (tau2train.config.ray_nodes), killed at the
timeout."""

from __future__ import annotations

import socket
import subprocess
import sys

from tau2train.config.endpoints import loopback_host, this_host_name, this_machine, this_machine_url
from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout
from tau2train.config.ray_checks import (
    ADDRESS_KEY,
    RoleAsk,
    job_asks,
    resolved_address,
    split_address,
)
from tau2train.config.ray_nodes import installed
from tau2train.records.ray_nodes import RayNode
from tau2train.schemas import ExperimentConfig

# the node list's process: Python and Ray's import, a connection, a zero-CPU task per node
NODES_TIMEOUT_S = 90


def check_ray_cluster(exp: ExperimentConfig, layout: Layout | None) -> list[RayNode]:
    """The cluster's alive nodes, once it is found able to run `exp` (`layout`: its roles; None:
    mode=eval, one task); ConfigError otherwise."""
    address = resolved_address(exp)
    check_reachable(address, exp.ray.connect_timeout_s)
    alive = [n for n in ray_nodes("nodes", address) if n.alive]
    check_room(address, alive, job_asks(exp, layout))
    check_on_a_node(address, alive)
    if exp.ray.check_nodes:
        check_environments(address, [n for n in ray_nodes("env", address) if n.alive])
    return alive


def check_on_a_node(address: str, alive: list[RayNode]) -> None:
    """This machine is one of the cluster's nodes: the run is a Ray driver, which joins through
    its own node's raylet (a machine outside the cluster would need Ray Client, which AReaL's
    scheduler does not use)."""
    names, addresses = this_machine()
    if any(n.ip in addresses or n.hostname.lower() in names for n in alive):
        return
    head = next((n for n in alive if n.head), None)
    raise ConfigError(
        ADDRESS_KEY, address,
        f"this machine ({this_host_name()}) is none of the cluster's nodes, and a Ray driver (this command, "
        "AReaL's controller) joins through a raylet of its own machine",
        valid="the address of a cluster this machine is a node of",
        fix="run the command on a node of the cluster: its head" + (f" ({head.hostname or head.ip})" if head else "")
        + ", or a machine joined with `ray start --address <head>:6379 --num-cpus 0`; on KubeRay, in the head pod "
        "(kubectl exec) or as a RayJob's entrypoint",
    )


def check_reachable(address: str, timeout_s: float) -> None:
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ConfigError(
            ADDRESS_KEY, address,
            f"no Ray head answers there ({type(error).__name__}: {error}; waited up to {timeout_s:g} s)",
            valid="the host:port of a running Ray head's GCS, reachable from this machine",
            fix="start the cluster (`ray start --head --port 6379` on the head, `ray start --address <head>:6379` "
            "on the others) or fix the address; `ray status --address <host:port>` shows whether it answers",
        ) from None


def ray_nodes(what: str, address: str) -> list[RayNode]:
    """The cluster's nodes (`what`: nodes, or env with each node's environment: see
    tau2train.config.ray_nodes), asked from a process of this interpreter, bounded in time."""
    argv = [sys.executable, "-m", "tau2train.config.ray_nodes", what, address]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=NODES_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        why = f"its node list did not come within {NODES_TIMEOUT_S} s"
    else:
        if done.returncode == 0:
            return [RayNode.from_json(line) for line in done.stdout.splitlines() if line.startswith("{")]
        why = "asking for its node list failed: " + (done.stderr.strip().splitlines() or ["no message"])[-1]
    raise ConfigError(
        ADDRESS_KEY, address, f"a Ray head answers, but {why}",
        valid="the GCS address of a running Ray cluster (Ray 2.x, the version in this environment)",
        fix="check the cluster with `ray status --address <host:port>`; the head's log is "
        "<its --temp-dir>/session_latest/logs/gcs_server.out",
    )


def check_room(address: str, alive: list[RayNode], asks: list[RoleAsk]) -> None:
    """Every worker's bundle fits on some node, and all of them on the cluster as a whole."""
    for ask in asks:
        if not any(n.cpus >= ask.cpus and n.gpus >= ask.gpus and n.memory_gb >= ask.memory_gb for n in alive):
            raise ConfigError(
                ADDRESS_KEY, address,
                f"no node has room for the {ask.role} ({ask.describe()}); the nodes have "
                + describe_nodes(alive),
                valid="a cluster with a node of at least the CPUs, GPUs and memory one worker asks for",
                fix="add such nodes, or lower actor.scheduling_spec.0.cpu / .mem (the rollout asks the same)",
            )
    for resource, total in (("cpus", "CPUs"), ("gpus", "GPUs"), ("memory_gb", "GB of memory")):
        needed = sum(ask.workers * getattr(ask, resource) for ask in asks)
        have = sum(getattr(n, resource) for n in alive)
        if needed > have:
            asked = "; ".join(f"{a.role}: {a.describe()}" for a in asks)
            raise ConfigError(
                ADDRESS_KEY, address,
                f"the run's workers ask for {needed:g} {total} in all ({asked}), and the cluster's {len(alive)} "
                f"alive node(s) have {have:g}",
                valid=f"a cluster with at least {needed:g} {total}",
                fix="add nodes, or a smaller layout (allocation=...), or lower the per-worker ask "
                "(actor.scheduling_spec.0.*)",
            )


def check_environments(address: str, alive: list[RayNode]) -> None:
    """Every alive node imports the tau2train and AReaL this machine runs: AReaL's workers are
    Ray actors running the node's own Python environment."""
    here = dict(zip(("tau2train", "areal"), installed()))
    for node in alive:
        found = {"tau2train": node.tau2train, "areal": node.areal}
        wrong = [f"{name} {found[name] or 'missing'} (here {here[name]})" for name in here if found[name] != here[name]]
        if node.problem or wrong:
            raise ConfigError(
                ADDRESS_KEY, address,
                f"node {node.ip}'s Python environment " + (
                    f"could not be read ({node.problem})" if node.problem else f"differs: {', '.join(wrong)}"),
                valid="nodes whose Python environment carries the same tau2train and AReaL as this machine",
                fix="install this tau2train on every node (the same `uv sync` as here, or an image built from it); "
                "ray.check_nodes=false skips this check",
            )


def describe_nodes(alive: list[RayNode]) -> str:
    return ", ".join(f"{n.ip}: CPU {n.cpus:g}, GPU {n.gpus:g}, memory {n.memory_gb:g} GB" for n in alive) or "none alive"


def check_reached_from_ray(exp: ExperimentConfig, endpoints: list, alive: list[RayNode]) -> None:
    """No server the run's workers talk to (Endpoint-like: key, url, role) is at a loopback host,
    unless every alive node is this machine: the rollout workers play the episodes on their nodes,
    where a loopback host is the node itself."""
    _, addresses = this_machine()
    elsewhere = [n.ip for n in alive if n.ip not in addresses and not loopback_host(f"http://{n.ip}")]
    if not elsewhere:
        return
    for endpoint in endpoints:
        host = loopback_host(endpoint.url)
        if host is None:
            continue
        this_url = this_machine_url(endpoint.url)
        raise ConfigError(
            endpoint.key, endpoint.url,
            f"names {host}, which is whichever machine connects: AReaL's rollout workers talk to the "
            f"{endpoint.role or 'server'} from their Ray nodes ({', '.join(elsewhere[:5])}), where {host} is the node "
            "itself, not this machine",
            valid=f"a host name or address the Ray nodes reach, e.g. {this_url} (this machine's name)",
            fix="start the user simulator with `tau2train-user-sim cluster=ray` (it records this machine's name), "
            f"or set {endpoint.key}={this_url} with the server listening beyond 127.0.0.1 (e.g. on 0.0.0.0)",
        )
