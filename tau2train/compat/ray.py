"""What tau2train reads of Ray's own state (Ray 2.60): the cluster's nodes and a job's actors as
the GCS has them, for the host-loss watch of a `cluster=ray` run (tau2train.launch.host_loss).

Asked from the run's own process, the Ray driver once AReaL's RayScheduler has connected it
(compat.areal_ray.ray_scheduler). Ray's public state API (`ray.util.state`) asks the dashboard,
which tau2train's clusters do not run (`ray start --include-dashboard=false`); the GCS's own
tables are read instead through the driver's GlobalStateAccessor:

- `ray.nodes()` (a DeveloperAPI: `ray._private.state.GlobalState.node_table`): every node the
  GCS knows, dead ones included: NodeID, Alive, NodeManagerAddress (its IP),
  NodeManagerHostname, NodeManagerPort (its raylet), Resources (`node:__internal_head__` on
  the head);
- `ray._private.state.actors(job_id=...)` (`GlobalState.actor_table`, private): a job's
  actors, every incarnation: Name, State (ALIVE, RESTARTING, DEAD, ...), Address.IPAddress /
  NodeID (where it runs or ran; zeros before it is placed), DeathCause (an
  `ActorDeathCause` proto: `actor_died_error_context.reason` NODE_DIED when its node died),
  StartTime.

Neither takes a timeout, and with the GCS gone a call can block (the accessor's GCS client
retries): each query here runs in a thread of its own, waited for at most `timeout` seconds;
while one is still blocked, the next answers `GcsUnanswered` at once (no pile of threads).

Nothing here imports Ray at module level; a process Ray is not loaded in is not connected.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

QUERY_TIMEOUT_S = 10.0
HEAD_RESOURCE = "node:__internal_head__"  # in the head node's Resources (ray/_private/ray_constants.py)
ALIVE = "ALIVE"
NIL_NODE_ID = "0" * 56  # an actor's Address.NodeID before it is placed (28 zero bytes)

T = TypeVar("T")


class GcsUnanswered(TimeoutError):
    """The GCS did not answer a query in time (or the query failed)."""


@dataclass(frozen=True)
class RayNode:
    node_id: str
    ip: str
    hostname: str
    alive: bool
    raylet_port: int
    head: bool


@dataclass(frozen=True)
class RayActor:
    actor_id: str
    name: str
    state: str  # the GCS's ActorState name: ALIVE, PENDING_CREATION, RESTARTING, DEAD, ...
    node_id: str  # "" until placed
    ip: str
    node_died: bool  # DEAD because its node died (DeathCause NODE_DIED)
    started: int  # StartTime (ms): the latest incarnation of a name has the largest


def driver() -> tuple[str, str] | None:
    """(this driver's job id in hex, the GCS address <head ip>:<port> it is connected to), from
    `ray.get_runtime_context()`; None while this process is not connected to Ray (Ray not
    imported: not connected, and not imported here either)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return context.get_job_id(), context.gcs_address


def nodes(timeout: float = QUERY_TIMEOUT_S) -> list[RayNode]:
    """Every node the GCS knows (`ray.nodes()`), dead ones included; GcsUnanswered if it does not
    answer in `timeout` seconds."""
    import ray

    return [RayNode(node_id=n.get("NodeID", ""), ip=n.get("NodeManagerAddress", ""),
                    hostname=n.get("NodeManagerHostname", ""), alive=bool(n.get("Alive")),
                    raylet_port=int(n.get("NodeManagerPort") or 0), head=HEAD_RESOURCE in (n.get("Resources") or {}))
            for n in bounded("nodes", ray.nodes, timeout)]


def gcs_nodes(address: str, timeout: float = QUERY_TIMEOUT_S) -> list[tuple[RayNode, dict[str, float]]]:
    """Every node the GCS at `address` knows, with its total resources, asked without a driver:
    Ray's GcsClient (`ray._raylet.GcsClient.get_all_node_info`, what `ray status` uses), which
    needs no raylet on this machine, so a machine outside the cluster can ask too (`ray.nodes()`
    needs a connected driver, which needs a node of its own)."""
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    infos = GcsClient(address=address).get_all_node_info(timeout=timeout).values()
    return [(RayNode(node_id=info.node_id.hex(), ip=info.node_manager_address, hostname=info.node_manager_hostname,
                     alive=info.state == GcsNodeInfo.ALIVE, raylet_port=info.node_manager_port,
                     head=info.is_head_node), dict(info.resources_total))
            for info in infos]


def job_actors(job_id_hex: str, timeout: float = QUERY_TIMEOUT_S) -> list[RayActor]:
    """Every actor of job `job_id_hex`, each incarnation (`ray._private.state.actors`);
    GcsUnanswered if the GCS does not answer in `timeout` seconds."""
    import ray
    from ray._private import state

    table = bounded("actors", lambda: state.actors(job_id=ray.JobID.from_hex(job_id_hex)), timeout)
    actors = []
    for actor in table.values():
        address = actor.get("Address") or {}
        node_id = address.get("NodeID") or ""
        actors.append(RayActor(actor_id=actor.get("ActorID", ""), name=actor.get("Name") or "",
                               state=actor.get("State", ""), node_id="" if node_id == NIL_NODE_ID else node_id,
                               ip=address.get("IPAddress") or "", node_died=_node_died(actor.get("DeathCause")),
                               started=int(actor.get("StartTime") or 0)))
    return actors


def _node_died(cause: Any) -> bool:
    """An ActorDeathCause proto says the actor's node died."""
    from ray.core.generated.common_pb2 import ActorDiedErrorContext

    if cause is None or not cause.HasField("actor_died_error_context"):
        return False
    return cause.actor_died_error_context.reason == ActorDiedErrorContext.NODE_DIED


def raylet_answers(ip: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a node's raylet accepts a TCP connection (a host that is gone, or its raylet,
    does not): a direct look, faster than the GCS's verdict (~30 s of missed health checks)."""
    with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=timeout):
        return True
    return False


_in_flight: dict[str, threading.Thread] = {}


def bounded(name: str, query: Callable[[], T], timeout: float) -> T:
    """`query()` run in a daemon thread, waited for `timeout` s; GcsUnanswered when it does not
    return in time, when it raises, or while the previous `name` query is still blocked."""
    previous = _in_flight.get(name)
    if previous is not None and previous.is_alive():
        raise GcsUnanswered(f"the GCS has not answered the previous {name} query yet")
    result: dict[str, Any] = {}

    def run():
        try:
            result["value"] = query()
        except Exception as error:  # noqa: BLE001 - reported as no answer, with its cause
            result["error"] = error

    thread = threading.Thread(target=run, name=f"tau2train-ray-{name}", daemon=True)
    _in_flight[name] = thread
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise GcsUnanswered(f"the GCS did not answer the {name} query in {timeout:.0f} s")
    if "error" in result:
        raise GcsUnanswered(f"the {name} query failed: {type(result['error']).__name__}: {result['error']}")
    return result["value"]
