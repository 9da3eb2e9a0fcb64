"""cluster=ray's checks before the run joins the cluster: the address it names, what each role
asks Ray for (AReaL's Ray scheduler: one placement-group bundle per worker), and shared storage
(any worker may land on any node). Checks that need the cluster itself are
tau2train.config.ray_cluster's, run when the run starts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tau2train.config.clusters import ClusterChecks
from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout
from tau2train.config.placement import eval_server_gpus
from tau2train.schemas import ExperimentConfig
from tau2train.schemas.clusters import RAY_ADDRESS_ENV, RAY_AUTO_ADDRESS
from tau2train.schemas.modes import facts

ADDRESS_KEY = "ray.address"
# the CPU server's module (tau2train.serving.cpu_sglang), named, not imported (it loads torch)
CPU_SERVER_MODULE = "tau2train.serving.cpu_sglang"
SHARED_PATHS_KEY = "ray.shared_paths"


@dataclass(frozen=True)
class RoleAsk:
    """What one role asks Ray for: `workers` bundles of cpus, gpus and memory each."""

    role: str
    workers: int
    cpus: float
    gpus: float
    memory_gb: float
    strategy: str | None  # AReaL's ray_placement_strategy; None: a Ray task, no placement group

    def describe(self) -> str:
        if self.strategy is None:
            return f"one Ray task on a node with room for {{CPU {self.cpus:g}, GPU {self.gpus:g}}}"
        return (f"{self.workers} worker{'s' if self.workers > 1 else ''} x {{CPU {self.cpus:g}, GPU {self.gpus:g}, "
                f"memory {self.memory_gb:g} GB}}, {self.strategy} placement group")


def role_asks(exp: ExperimentConfig, layout: Layout) -> list[RoleAsk]:
    """Each GPU role's bundles, as AReaL asks them: the trainer one worker per GPU of its world
    (areal/infra/controller/train_controller.py:280), the rollout one per data-parallel server
    with its tp x pp GPUs (rollout_controller.py:181-195), CPUs and memory of scheduling_spec[0]."""
    asks = []
    for role in facts(exp.mode).gpu_roles:
        spec = getattr(exp, role).scheduling_spec[0]
        parallel = getattr(layout, role).parallel
        if role == "rollout":
            workers, gpus = parallel.dp_size, (parallel.world_size // parallel.dp_size if spec.gpu else 0)
        else:
            workers, gpus = parallel.world_size, spec.gpu
        asks.append(RoleAsk(role, workers, spec.cpu, gpus, spec.mem, spec.ray_placement_strategy))
    return asks


def eval_ask(exp: ExperimentConfig) -> RoleAsk:
    """What mode=eval's one Ray task asks for: a CPU, and its checkpoint server's GPUs (none for
    the CPU server, which needs none)."""
    cpu_server = exp.eval.server.server_module == CPU_SERVER_MODULE
    return RoleAsk("eval", 1, 1.0, 0.0 if cpu_server else float(eval_server_gpus(exp) or 0), 0.0, None)


def job_asks(exp: ExperimentConfig, layout: Layout | None) -> list[RoleAsk]:
    """What a job asks Ray for: its roles' workers (`layout`), or mode=eval's one task (None)."""
    return role_asks(exp, layout) if layout is not None else [eval_ask(exp)]


def resolved_address(exp: ExperimentConfig) -> str:
    """host:port of the cluster's GCS: ray.address, or $RAY_ADDRESS for `auto`."""
    address = exp.ray.address
    if address == RAY_AUTO_ADDRESS:
        address = os.environ.get(RAY_ADDRESS_ENV, "")
        if not address:
            raise ConfigError(
                ADDRESS_KEY, RAY_AUTO_ADDRESS,
                f"auto means the cluster ${RAY_ADDRESS_ENV} names, and ${RAY_ADDRESS_ENV} is not set here",
                valid="host:port of the Ray head's GCS, e.g. ray-head:6379",
                fix=f"add {ADDRESS_KEY}=<head host>:6379 (what `ray start --head` printed), or export {RAY_ADDRESS_ENV}",
            )
    return address


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of a GCS address; ConfigError on anything else (a Ray Client ray:// URL included)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            ADDRESS_KEY, address,
            "is not the host:port of a Ray head's GCS" + (
                " (a ray:// Ray Client address: a tau2train run is a driver on the cluster's network, "
                "which Ray Client is not)" if "://" in address else ""),
            valid="host:port, e.g. ray-head:6379 or 10.0.0.5:6379; or auto ($RAY_ADDRESS)",
            fix="use the address `ray start --head` printed (its --port, 6379 by default), as host:port",
        )
    return host.strip("[]"), int(port)


def check_ray_settings(exp: ExperimentConfig) -> None:
    if exp.ray.address != RAY_AUTO_ADDRESS:
        split_address(exp.ray.address)


def check_ray_layout(exp: ExperimentConfig, layout: Layout) -> None:
    """Every role's workers ask for something: a worker of no CPU, GPU and memory would land
    anywhere, the head included."""
    for ask in role_asks(exp, layout):
        if ask.cpus <= 0 and ask.gpus <= 0:
            raise ConfigError(
                f"{ask.role}.scheduling_spec.0.cpu", ask.cpus,
                f"the {ask.role} workers ask Ray for no CPU and no GPU: Ray may place them on any node, "
                "its head included",
                valid="at least 1 CPU per worker",
                fix="set actor.scheduling_spec.0.cpu to the CPUs each worker needs",
            )


def spans_nodes(exp: ExperimentConfig) -> bool:
    """A run with workers: Ray places them on whichever nodes have room."""
    return bool(facts(exp.mode).gpu_roles)


CHECKS = ClusterChecks(
    settings=check_ray_settings,
    layout=check_ray_layout,
    spans_nodes=spans_nodes,
    nodes_described=lambda exp: "Ray's workers, on whichever nodes have room,",
    shared_paths=lambda exp: (SHARED_PATHS_KEY, list(exp.ray.shared_paths)),
)
