"""AReaL 1.0.4's Ray scheduler made to run tau2train's GRPO runs (scheduler.type=ray); guarded by
tests/test_compat_ray.py.

Nothing here imports AReaL or Ray at module level (the scheduler class is made on first use,
the proxy actor is a plain class Ray wraps then). What 1.0.4 lacks, each closed in one place:

- `RayScheduler.fork_workers` calls `self._create_forked_workers` (areal/infra/scheduler/ray.py:630),
  which 1.0.4 does not define (`_create_forked_workers_internal`, :222, does): AttributeError.
  And it asks each forked actor for gpu=1 whatever its target has (:628), which on a CPU-only
  Ray becomes `resources={"CPU": 0.01}` beside `num_cpus=0` (:283-286), a request Ray refuses.
  `_create_forked_workers` here: AReaL's internal one, each forked actor asking a GPU only
  where its target's spec has one (a share of it, as AReaL means: :276-283).
- `fork_workers` ignores its command (:613-619): a forked actor is always a RayRPCServer, while
  the rollout proxies AReaL's agent mode needs are a server of their own, `python -m
  areal.experimental.openai.proxy.proxy_rollout_server` (areal/infra/controller/
  rollout_controller.py:369). On that command the forked actor is `RayProxyServer`: placed
  by AReaL in the rollout worker's bundle, it runs that server as a child process at the
  address AReaL gave the worker, with the flags AReaL's local scheduler gives it
  (areal/infra/scheduler/local.py:341-368), and forwards AReaL's configure / set_env /
  create_engine / call to the server's HTTP API as the local scheduler's client does
  (local.py:1014-1030, 1337-1363, 1473-1500).
- The trainer refuses proxy workers on Ray outright (areal/trainer/rl_trainer.py:1395,
  `_ensure_proxy_started`): `proxy_start_allowed`, entered by compat.areal.with_trainer_hooks's
  `_ensure_proxy_started` hook (the one place AReaL's proxy start is reached), lets the start
  past that check, and only for a scheduler made here.
- Its constructor leaves the trial's name-resolve records as a previous run left them (AReaL's
  local and Slurm schedulers clear them, local.py:146-151, slurm.py:128-133): cleared here.
- Ray runs no worker command (`scheduling_spec.cmd`; ray.py:195-200): the Ray job's
  worker_process_setup_hook (tau2train.serving.ray_worker.setup) applies in Ray's worker
  processes what tau2train's worker command applies elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

RAY_SCHEDULER = "areal.infra.scheduler.ray"
RAY_WORKER_ACTOR = "RayRPCServer"  # the module-level actor class ray.py's forks are made of
FORK_INTERNAL = "_create_forked_workers_internal"
FORK_MISSING = "_create_forked_workers"
PROXY_SERVER = "areal.experimental.openai.proxy.proxy_rollout_server"
WORKER_SETUP_HOOK = "tau2train.serving.ray_worker.setup"
STARTS_PROXIES = "starts_rollout_proxies"  # the attribute that marks a scheduler made here
PROXY_START_TIMEOUT_S = 300.0

logger = logging.getLogger("tau2train.compat.areal_ray")


def ray_scheduler(exp_config: Any, *, address: str, worker_setup_env: dict[str, str]) -> Any:
    """AReaL's RayScheduler for `exp_config` (as AReaL's trainer builds it,
    areal/trainer/rl_trainer.py:919-920), able to fork workers and to start rollout proxies,
    connected to the Ray cluster at `address` with tau2train's worker setup hook and its
    environment `worker_setup_env` (tau2train.serving.ray_worker). An existing connection of
    this process is used as it is (its job's setup hook, if any, stays what it was)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=True,
                 runtime_env={"worker_process_setup_hook": WORKER_SETUP_HOOK, "env_vars": dict(worker_setup_env)})
    return proxy_ray_scheduler_class()(exp_config=exp_config)


@functools.cache
def proxy_ray_scheduler_class() -> type:
    """AReaL's RayScheduler with `_create_forked_workers` and rollout proxies (module docstring)."""
    ray_module = importlib.import_module(RAY_SCHEDULER)

    class ProxyRayScheduler(ray_module.RayScheduler):
        starts_rollout_proxies = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._specs: dict[str, list[Any]] = {}  # each role's workers' scheduling specs
            self._clear_trial_records()

        def _clear_trial_records(self):
            """The trial's name-resolve records cleared, as AReaL's local and Slurm schedulers
            clear them when made (areal/infra/scheduler/local.py:146-151, slurm.py:128-133) and
            its Ray scheduler does not: a worker Ray killed (a run stopped by a lost host) leaves
            its records behind, and the resumed run's first weight update then fails on one
            (NameEntryExistsError: .../update_weights_from_disk/0/ENTRY)."""
            from areal.utils import name_resolve, names

            config = self.exp_config
            if config is None:  # no trial (AReaL's own schedulers clear only with one)
                return
            name_resolve.reconfigure(config.cluster.name_resolve)
            name_resolve.clear_subtree(names.trial_root(config.experiment_name, config.trial_name))

        def _prepare_worker_specs(self, role, num_workers, schedulings):
            """AReaL's, each role's specs kept (create_workers reads them here, any strategy)."""
            self._specs[role] = super()._prepare_worker_specs(role, num_workers, schedulings)
            return self._specs[role]

        def _create_forked_workers(self, role, target_role, target_workers, schedulings):
            """What AReaL's fork_workers calls: its internal fork, each spec's GPU the target's
            (at most the one GPU AReaL shares), not AReaL's gpu=1."""
            targets = self._specs.get(target_role) or [None] * len(schedulings)
            schedulings = [spec if target is None else _with_gpu(spec, min(target.gpu, 1))
                           for spec, target in zip(schedulings, targets)]
            self._specs[role] = schedulings
            return getattr(self, FORK_INTERNAL)(role, target_role, target_workers, schedulings)

        def fork_workers(self, role, target_role, command=None):
            """AReaL's fork; on the proxy server's command, forked RayProxyServer actors
            serving it (the module docstring)."""
            if PROXY_SERVER not in (command or ""):
                return super().fork_workers(role, target_role, command)
            import ray

            with _forked_actor_class(ray_module, ray.remote(RayProxyServer)):
                worker_ids = super().fork_workers(role, target_role)
            try:
                self._serve_proxies(role)
            except BaseException:
                self.delete_workers(role)
                raise
            return worker_ids

        def _serve_proxies(self, role: str) -> None:
            import ray

            workers = self._workers[role]
            refs = [wi.actor.serve.remote(self.proxy_argv(role, index, wi.worker.ip, wi.worker.worker_ports[0]),
                                          PROXY_START_TIMEOUT_S)
                    for index, wi in enumerate(workers)]
            for wi, served in zip(workers, ray.get(refs, timeout=PROXY_START_TIMEOUT_S + 30)):
                logger.info("rollout proxy %s serves at %s (pid %s)", wi.worker.id, served["address"], served["pid"])

        def proxy_argv(self, role: str, index: int, host: str, port: Any) -> list[str]:
            """The proxy server's arguments, as AReaL's local scheduler gives them
            (areal/infra/scheduler/local.py:341-368), at the address AReaL gave the worker."""
            config = self.exp_config
            names = config.cluster.name_resolve
            argv = ["-m", PROXY_SERVER, "--host", host, "--port", str(port),
                    "--experiment-name", str(config.experiment_name), "--trial-name", str(config.trial_name),
                    "--role", role, "--worker-index", str(index)]
            for flag, value in (("--name-resolve-type", names.type), ("--nfs-record-root", names.nfs_record_root),
                                ("--etcd3-addr", names.etcd3_addr), ("--fileroot", config.cluster.fileroot)):
                if value:
                    argv += [flag, str(value)]
            return argv

    return ProxyRayScheduler


def _with_gpu(spec: Any, gpu: int) -> Any:
    import dataclasses

    return dataclasses.replace(spec, gpu=gpu)


@contextlib.contextmanager
def _forked_actor_class(ray_module: Any, actor_class: Any):
    """AReaL's forked actors made of `actor_class` while inside: its internal fork builds them
    from its module's `RayRPCServer` (areal/infra/scheduler/ray.py:284)."""
    saved = getattr(ray_module, RAY_WORKER_ACTOR)
    setattr(ray_module, RAY_WORKER_ACTOR, actor_class)
    try:
        yield
    finally:
        setattr(ray_module, RAY_WORKER_ACTOR, saved)


@contextlib.contextmanager
def proxy_start_allowed(trainer: Any):
    """AReaL's `_ensure_proxy_started` let past its refusal of Ray (areal/trainer/
    rl_trainer.py:1395: `if self.config.scheduler.type == "ray": raise NotImplementedError`),
    for a trainer whose scheduler is made here: the config reads "local" while inside (that
    check is the only reader there; the proxies start through the scheduler itself). Any
    other trainer is left as it is."""
    scheduler_config = trainer.config.scheduler
    if scheduler_config.type != "ray" or not getattr(getattr(trainer, "scheduler", None), STARTS_PROXIES, False):
        yield
        return
    scheduler_config.type = "local"
    try:
        yield
    finally:
        scheduler_config.type = "ray"


def _exit_with_parent() -> None:
    """In the proxy server's process before it runs: SIGTERM when the actor's process dies
    (Linux's PR_SET_PDEATHSIG), so that a killed actor leaves no server behind."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class RayProxyServer:
    """A forked Ray actor (ProxyRayScheduler) that runs AReaL's proxy rollout server beside
    its rollout worker, and answers the RayScheduler's actor calls by the server's HTTP API."""

    def __init__(self):
        self.server: subprocess.Popen | None = None
        self.address: str | None = None
        self.configured: tuple[Any, str, int] | None = None
        self.ports: set[int] = set()

    def ping(self) -> str:
        return "ok"

    def alloc_ports(self, count: int) -> list[int]:
        from areal.utils.network import find_free_ports

        ports = find_free_ports(count, exclude_ports=self.ports)
        self.ports.update(ports)
        return ports

    def configure(self, config: Any, role: str, rank: int) -> None:
        """Kept until the server runs (AReaL configures a fork before anything else)."""
        self.configured = (config, role, rank)

    def set_env(self, env: dict[str, str]) -> None:
        os.environ.update({str(k): str(v) for k, v in env.items()})
        if self.address:
            self._post("/set_env", {"env": {str(k): str(v) for k, v in env.items()}})

    def serve(self, argv: list[str], timeout: float) -> dict[str, Any]:
        """Start the server (`python <argv>`), wait until it answers /health, configure it."""
        import requests
        from areal.utils.network import format_hostport

        host, port = argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])
        self.server = subprocess.Popen([sys.executable, *argv], preexec_fn=_exit_with_parent)
        address = f"http://{format_hostport(host, port)}"
        deadline = time.monotonic() + timeout
        while True:
            if self.server.poll() is not None:
                raise RuntimeError(f"the proxy server {argv} exited {self.server.returncode} before it answered")
            with contextlib.suppress(requests.RequestException):
                if requests.get(address + "/health", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the proxy server {argv} did not answer {address}/health in {timeout:.0f} s")
            time.sleep(0.5)
        self.address = address
        if self.configured is not None:
            from areal.infra.rpc.serialization import serialize_value

            config, role, rank = self.configured
            self._post("/configure", serialize_value({"config": config, "role": role, "rank": rank}))
        return {"address": address, "pid": self.server.pid}

    def create_engine(self, engine: str, *init_args, engine_name: str | None = None, **init_kwargs) -> Any:
        from areal.infra.rpc.serialization import serialize_value

        return self._post("/create_engine", {"engine": engine, "engine_name": engine_name,
                                             "init_args": serialize_value(list(init_args)),
                                             "init_kwargs": serialize_value(init_kwargs)}).get("result")

    def call(self, method: str, *args, engine_name: str | None = None, rpc_meta: dict | None = None, **kwargs) -> Any:
        from areal.infra.rpc.serialization import deserialize_value, serialize_value

        answer = self._post("/call", {"method": method, "engine_name": engine_name, "args": serialize_value(list(args)),
                                      "kwargs": serialize_value(kwargs), "rpc_meta": rpc_meta})
        return deserialize_value(answer.get("result"))

    def destroy(self) -> None:
        import ray

        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        ray.actor.exit_actor()

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        import orjson
        import requests

        if self.address is None:
            raise RuntimeError(f"{path} before the proxy server runs")
        response = requests.post(self.address + path, data=orjson.dumps(payload),
                                 headers={"Content-Type": "application/json"}, timeout=7200)
        if response.status_code != 200:
            raise RuntimeError(f"the proxy server's {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json()
