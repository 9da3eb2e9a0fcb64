"""Guards of tau2train/compat/areal_ray.py and tau2train/serving/ray_worker.py (scheduler.type=ray):
each fails, naming what moved, when an AReaL upgrade changes what they patch or rely on (the gap
each closes included: a guard that fails once AReaL closes the gap itself says the patch can go).
No Ray cluster and no AReaL run: AReaL's classes driven with stand-ins, and fresh interpreters
where a patch is process-wide."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tau2train.compat import areal as areal_compat
from tau2train.compat import areal_ray
from tau2train.serving import ray_worker

TESTS = Path(__file__).resolve().parent


# --- AReaL's RayScheduler: the fork ---------------------------------------------------------

def test_areals_ray_fork_still_calls_a_method_it_lacks_and_asks_every_fork_for_a_gpu():
    """The gap `_create_forked_workers` fills, and the internal fork it calls with its arguments."""
    from areal.infra.scheduler import ray as ray_module

    scheduler = ray_module.RayScheduler
    assert not hasattr(scheduler, areal_ray.FORK_MISSING), \
        "AReaL's RayScheduler defines _create_forked_workers now: is compat.areal_ray's still needed?"
    fork = inspect.getsource(scheduler.fork_workers)
    assert f"self.{areal_ray.FORK_MISSING}(" in fork, "RayScheduler.fork_workers forks otherwise now"
    assert "gpu=1" in fork, "RayScheduler.fork_workers no longer asks every fork for a GPU"
    assert list(inspect.signature(scheduler.fork_workers).parameters) == ["self", "role", "target_role", "command"]
    internal = getattr(scheduler, areal_ray.FORK_INTERNAL)
    assert list(inspect.signature(internal).parameters) == ["self", "role", "target_role", "target_workers", "schedulings"]
    # the forked actors are built from the module's actor class, which the proxy fork swaps
    assert f"{areal_ray.RAY_WORKER_ACTOR}.options(" in inspect.getsource(internal)
    assert hasattr(ray_module, areal_ray.RAY_WORKER_ACTOR)
    # each role's specs are kept where create_workers reads them, whatever its strategy
    create = inspect.getsource(scheduler.create_workers)
    assert create.index("self._prepare_worker_specs(") < create.index("strategy_type == SchedulingStrategyType.colocation")


class _Target:
    """A stand-in for AReaL's RayWorkerInfo of a rollout worker."""

    def __init__(self):
        self.worker = types.SimpleNamespace(id="rollout/0", ip="10.0.0.2", worker_ports=["0", "31000"])


@pytest.fixture
def scheduler():
    """tau2train's RayScheduler (no Ray connection), its bookkeeping emptied afterwards so that
    AReaL's __del__ tears nothing down."""
    from areal.api.cli_args import SchedulingSpec

    made = areal_ray.proxy_ray_scheduler_class()(exp_config=None)
    made._workers["rollout"] = [_Target()]
    made._prepare_worker_specs("rollout", 1, [SchedulingSpec(cpu=2, gpu=0, mem=1)])
    forks = []

    def internal(role, target_role, target_workers, schedulings):
        from areal.infra.scheduler import ray as ray_module

        forks.append({"role": role, "target_role": target_role, "gpus": [s.gpu for s in schedulings],
                      "actor_class": getattr(ray_module, areal_ray.RAY_WORKER_ACTOR)})
        made._workers[role] = [_Target()]
        return [f"{role}/0"]

    made._create_forked_workers_internal = internal
    made.forks = forks
    yield made
    made._workers.clear()
    made._colocated_roles.clear()


@pytest.mark.parametrize(("target_gpu", "fork_gpu"), [(0, 0), (1, 1), (2, 1)])
def test_areals_fork_reaches_the_internal_fork_with_the_targets_gpu(scheduler, target_gpu, fork_gpu):
    """AReaL's own fork_workers (an RPC-server fork), through `_create_forked_workers`: a fork of
    a CPU worker asks no GPU (AReaL's gpu=1 there is a request Ray refuses), one of a GPU worker
    a share of one."""
    import dataclasses

    from areal.infra.scheduler import ray as ray_module

    scheduler._specs["rollout"] = [dataclasses.replace(scheduler._specs["rollout"][0], gpu=target_gpu)]
    assert scheduler.fork_workers("rollout-fork", "rollout") == ["rollout-fork/0"]
    (fork,) = scheduler.forks
    assert fork["gpus"] == [fork_gpu] and fork["target_role"] == "rollout"
    assert fork["actor_class"] is getattr(ray_module, areal_ray.RAY_WORKER_ACTOR)  # AReaL's RayRPCServer
    assert scheduler._colocated_roles == {"rollout-fork": "rollout"}
    # a fork of that fork (the eval rollout's proxy: eval-rollout is itself a fork of rollout)
    scheduler.fork_workers("fork-of-fork", "rollout-fork")
    assert scheduler.forks[-1]["gpus"] == [fork_gpu]


def test_a_fork_on_the_proxy_command_makes_proxy_actors_and_starts_their_servers(scheduler, monkeypatch):
    from areal.infra.controller import rollout_controller
    from areal.infra.scheduler import ray as ray_module

    # the command AReaL's rollout controller forks its proxies with
    assert f'"{areal_ray.PROXY_SERVER}"' in inspect.getsource(rollout_controller.RolloutController._async_start_proxy)
    served = []
    monkeypatch.setattr(scheduler, "_serve_proxies", served.append, raising=False)
    original = getattr(ray_module, areal_ray.RAY_WORKER_ACTOR)
    assert scheduler.fork_workers("proxy-rollout", "rollout", command=areal_ray.PROXY_SERVER) == ["proxy-rollout/0"]
    (fork,) = scheduler.forks
    assert fork["actor_class"].__ray_metadata__.modified_class.__name__ == areal_ray.RayProxyServer.__name__
    assert fork["gpus"] == [0] and served == ["proxy-rollout"]
    assert getattr(ray_module, areal_ray.RAY_WORKER_ACTOR) is original  # put back


def test_a_proxy_whose_server_does_not_start_is_deleted(scheduler, monkeypatch):
    deleted = []

    def fail(role):
        raise TimeoutError("no /health")

    monkeypatch.setattr(scheduler, "_serve_proxies", fail, raising=False)
    monkeypatch.setattr(scheduler, "delete_workers", deleted.append, raising=False)
    with pytest.raises(TimeoutError):
        scheduler.fork_workers("proxy-rollout", "rollout", command=areal_ray.PROXY_SERVER)
    assert deleted == ["proxy-rollout"]


# --- the proxy server -------------------------------------------------------------------------

def _proxy_config(tmp_path: Path):
    from areal.api.cli_args import BaseExperimentConfig

    config = BaseExperimentConfig(experiment_name="raytest", trial_name="t1")
    config.cluster.fileroot = str(tmp_path / "fileroot")
    config.cluster.name_resolve.type = "nfs"
    config.cluster.name_resolve.nfs_record_root = str(tmp_path / "names")
    return config


def test_the_proxy_server_takes_the_flags_it_is_given(tmp_path):
    """Every flag of `proxy_argv` is one AReaL's proxy server parses (it ignores unknown ones:
    parse_known_args), and the HTTP API RayProxyServer forwards to is there."""
    from areal.experimental.openai.proxy import proxy_rollout_server as server

    assert server.__name__ == areal_ray.PROXY_SERVER
    made = areal_ray.proxy_ray_scheduler_class()(exp_config=_proxy_config(tmp_path))
    argv = made.proxy_argv("proxy-rollout", 0, "10.0.0.2", 31000)
    assert argv[:2] == ["-m", areal_ray.PROXY_SERVER]
    main = inspect.getsource(server.main)
    assert "parse_known_args" in main
    for flag in (word for word in argv if word.startswith("--")):
        assert f'"{flag}"' in main, f"AReaL's proxy server takes no {flag} now"
    assert {"--name-resolve-type", "--nfs-record-root", "--fileroot"} <= set(argv)
    paths = {route.path for route in server.app.routes}
    assert {"/health", "/configure", "/set_env", "/create_engine", "/call"} <= paths
    assert 'data.get("init_kwargs"' in inspect.getsource(server.create_engine)
    call = inspect.getsource(server.call_engine_method)
    for key in ("method", "args", "kwargs"):
        assert f'data.get("{key}"' in call, f"AReaL's proxy server's /call reads no {key} now"


def test_ray_proxy_server_runs_areals_proxy_server_and_forwards_engine_calls(tmp_path):
    """RayProxyServer's methods as a plain object (no Ray): the real proxy server started at the
    address given, configured, an engine created and called through its HTTP API, with AReaL's
    serialization both ways; and stopped."""
    from areal.utils.network import find_free_ports

    config = _proxy_config(tmp_path)
    made = areal_ray.proxy_ray_scheduler_class()(exp_config=config)
    port = find_free_ports(1)[0]
    proxy = areal_ray.RayProxyServer()
    proxy.configure(config, "proxy-rollout", 0)
    with pytest.raises(RuntimeError, match="before the proxy server runs"):
        proxy.call("most_common")
    try:
        served = proxy.serve(made.proxy_argv("proxy-rollout", 0, "127.0.0.1", port), timeout=120)
        assert served["address"] == f"http://127.0.0.1:{port}" and served["pid"] == proxy.server.pid
        proxy.set_env({"TAU2TRAIN_RAY_TEST": "1"})
        # any importable class is an engine to the server: created with keyword arguments
        proxy.create_engine("collections.Counter", engine_name="proxy-rollout/0", a=3, b=1)
        assert proxy.call("most_common", 1, engine_name="proxy-rollout/0") == [["a", 3]]  # JSON: a list
        with pytest.raises(RuntimeError, match="500|answered"):
            proxy.call("no_such_method")
    finally:
        if proxy.server is not None:
            proxy.server.terminate()
            proxy.server.wait(30)


# --- AReaL's trainer: the refusal ---------------------------------------------------------------

def test_areals_trainer_still_refuses_proxies_on_ray_and_proxy_start_allowed_lets_ours_past():
    from areal.trainer.rl_trainer import PPOTrainer

    source = inspect.getsource(PPOTrainer._ensure_proxy_started)
    assert 'self.config.scheduler.type == "ray"' in source, \
        "AReaL's trainer no longer refuses proxies on Ray: is compat.areal_ray.proxy_start_allowed still needed?"

    class Trainer(areal_compat.with_trainer_hooks(PPOTrainer)):
        pass

    trainer = Trainer.__new__(Trainer)
    trainer.config = types.SimpleNamespace(scheduler=types.SimpleNamespace(type="ray"),
                                           rollout=types.SimpleNamespace(agent=None))
    trainer.rollout, trainer.eval_rollout, trainer._proxy_started = None, None, False
    trainer.scheduler = object()  # AReaL's own RayScheduler, say: refused as before
    with pytest.raises(NotImplementedError, match="RayScheduler"):
        trainer._ensure_proxy_started()
    trainer.scheduler = types.SimpleNamespace(**{areal_ray.STARTS_PROXIES: True})
    trainer._ensure_proxy_started()
    assert trainer._proxy_started and trainer.config.scheduler.type == "ray"


# --- the Ray workers' setup hook ------------------------------------------------------------------

def test_the_setup_hook_waits_for_the_module_areals_ray_scheduler_makes_its_workers_from():
    from areal.infra.scheduler import ray as ray_module

    assert importlib.util.find_spec(ray_worker.RAY_RPC_SERVER) is not None
    assert f"from {ray_worker.RAY_RPC_SERVER} import {areal_ray.RAY_WORKER_ACTOR}" in inspect.getsource(ray_module)
    # Ray ignores the worker command: the reason for the hook
    assert ".cmd" not in inspect.getsource(ray_module)
    assert areal_ray.WORKER_SETUP_HOOK == f"{ray_worker.__name__}.{ray_worker.setup.__name__}"


def test_worker_env_names_the_cpu_server_for_tau2trains_cpu_worker_command_only(monkeypatch):
    from tau2train.config.registry import worker_cmd

    monkeypatch.delenv(ray_worker.CPU_SERVER_ENV, raising=False)
    assert ray_worker.worker_env(worker_cmd("cpu")) == {ray_worker.INFERENCE_SERVER_ENV: ray_worker.CPU}
    assert ray_worker.worker_env(worker_cmd("sglang")) == {}
    assert ray_worker.worker_env(None) == {}
    monkeypatch.setenv(ray_worker.CPU_SERVER_ENV, "helpers.cpu_rollout_worker cpu-sglang")
    assert ray_worker.worker_env(worker_cmd("cpu"))[ray_worker.CPU_SERVER_ENV] == "helpers.cpu_rollout_worker cpu-sglang"
    assert ray_worker.worker_env(worker_cmd("sglang")) == {}


SETUP_THEN_IMPORT = """
import json, sys
from tau2train.compat.areal import _AfterImport
from tau2train.serving.ray_worker import setup
setup()
waiting = [f.name for f in sys.meta_path if isinstance(f, _AfterImport)]
from areal.api.cli_args import SGLangConfig  # AReaL's package loads its RayRPCServer module
command = SGLangConfig.build_cmd_from_args({"model_path": "/m", "host": "10.0.0.1", "port": 31000})
import areal.engine.fsdp_engine as fsdp
print(json.dumps({"waiting": waiting, "command": command, "executable": sys.executable,
                  "fsdp": bool(getattr(fsdp.FSDPEngine._prepare_mb_inputs, "keeps_live_rows", False)),
                  "hooks": [f.name for f in sys.meta_path if isinstance(f, _AfterImport)]}))
"""


def _setup_then_import(env: dict[str, str]) -> dict:
    """In a fresh interpreter: the hook, then AReaL as a Ray worker loads it."""
    import json

    clean = {k: v for k, v in os.environ.items() if k not in (ray_worker.INFERENCE_SERVER_ENV, ray_worker.CPU_SERVER_ENV)}
    done = subprocess.run([sys.executable, "-c", SETUP_THEN_IMPORT], env={**clean, **env}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_setup_hook_patches_nothing_in_a_process_not_running_the_cpu_server():
    seen = _setup_then_import({})
    assert seen["waiting"] == [] and seen["hooks"] == []
    assert seen["command"][2].endswith("launch_server") and not seen["fsdp"]  # AReaL's SGLang, AReaL's logits


@pytest.mark.parametrize("server", [None, "helpers.cpu_rollout_worker cpu-sglang"])
def test_the_setup_hook_patches_an_areal_ray_worker_of_the_cpu_server_once_it_loads(server):
    """Nothing until AReaL's RayRPCServer module loads; then the CPU server's command and the
    FSDP engine's logits (rollout_worker.patch_worker), as tau2train's worker command does."""
    env = {ray_worker.INFERENCE_SERVER_ENV: ray_worker.CPU, **({ray_worker.CPU_SERVER_ENV: server} if server else {})}
    seen = _setup_then_import(env)
    assert seen["waiting"] == [ray_worker.RAY_RPC_SERVER]
    expected = server.split() if server else ["tau2train.serving.cpu_sglang", "--torch-threads", "1"]
    assert seen["command"][:2 + len(expected)] == [seen["executable"], "-m", *expected]
    assert seen["command"][2 + len(expected):] == ["--model-path", "/m", "--host", "10.0.0.1", "--port", "31000"]
    assert seen["fsdp"] and seen["hooks"] == []


def test_ray_scheduler_still_leaves_the_trials_name_resolve_records_and_ours_clears_them(tmp_path):
    """AReaL's local and Slurm schedulers clear the trial's name-resolve records when made; its
    Ray scheduler does not (a resumed run then fails on the killed run's weight-update entry):
    when upstream starts clearing them, this patch can go."""
    import inspect

    import areal.infra.scheduler.local as local_module
    import areal.infra.scheduler.ray as ray_module
    from areal.api.cli_args import NameResolveConfig
    from areal.utils import name_resolve, names

    assert "clear_subtree" in inspect.getsource(local_module.LocalScheduler.__init__)
    assert "clear_subtree" not in inspect.getsource(ray_module)
    config = NameResolveConfig(type="nfs", nfs_record_root=str(tmp_path))
    name_resolve.reconfigure(config)
    name_resolve.add(names.trial_root("e", "t") + "/update_weights_from_disk/0", "left")
    scheduler = areal_ray.proxy_ray_scheduler_class().__new__(areal_ray.proxy_ray_scheduler_class())
    scheduler.exp_config = type("C", (), {"cluster": type("K", (), {"name_resolve": config})(),
                                          "experiment_name": "e", "trial_name": "t"})()
    scheduler._clear_trial_records()
    assert not list(tmp_path.rglob("ENTRY"))
