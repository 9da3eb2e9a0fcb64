"""What `actor.scheduling_spec.0.cmd` does for AReaL's workers on local/Slurm, done in Ray's worker
processes on `scheduler.type=ray`, where AReaL runs every worker as its own `RayRPCServer` actor
and no worker command at all (areal/infra/scheduler/ray.py:198-204 ignores `cmd`).

`setup` is the Ray job's `worker_process_setup_hook` (tau2train.compat.areal_ray.ray_scheduler
connects with it): Ray runs it first in every worker process of the run, on every node, actors
with their own runtime_env (AReaL's) included. It reads the job's environment, which
`worker_env` builds from the workers' command:

* TAU2TRAIN_INFERENCE_SERVER=cpu (the workers' command is tau2train.serving.rollout_worker, the
  allocation.server=cpu worker): once AReaL's RayRPCServer module is imported (with the
  `areal` package itself: areal/__init__.py loads its schedulers), the patches of
  `rollout_worker.patch_worker`: the inference server this process starts is the CPU server,
  its FSDP engine (once loaded) computes logits only where read. Unset or anything else:
  nothing.
* TAU2TRAIN_CPU_SERVER="<module> [args...]" (optional, with the above): the program started in
  place of SGLang, instead of `tau2train.serving.cpu_sglang --torch-threads 1` (a test's own
  server, e.g. "helpers.cpu_rollout_worker cpu-sglang", whose completions it can force).

Harmless elsewhere: in a process that never imports AReaL, `setup` only leaves an import hook
that never fires; one that imports AReaL but starts no inference server and trains nothing (the
rollout proxies' actors) gets a replaced static method it never calls and an import hook.
"""

from __future__ import annotations

import os

from tau2train.compat.areal import when_imported
from tau2train.serving.rollout_worker import SERVER_ARGS, SERVER_MODULE, patch_worker

INFERENCE_SERVER_ENV = "TAU2TRAIN_INFERENCE_SERVER"
CPU_SERVER_ENV = "TAU2TRAIN_CPU_SERVER"
CPU = "cpu"  # allocation.server's name of the CPU server (tau2train.schemas.groups.POLICY_SERVERS)
# the module of AReaL's Ray worker actor, imported in a Ray worker process as the actor is made
RAY_RPC_SERVER = "areal.infra.rpc.ray_rpc_server"


def setup() -> None:
    """The worker_process_setup_hook (see the module docstring)."""
    if os.environ.get(INFERENCE_SERVER_ENV) != CPU:
        return
    server = os.environ.get(CPU_SERVER_ENV, "").split() or [SERVER_MODULE, *SERVER_ARGS]
    when_imported(RAY_RPC_SERVER, lambda module: patch_worker(*server))


def worker_env(cmd: str | None) -> dict[str, str]:
    """The environment `setup` reads in a Ray run whose workers would run `cmd` elsewhere
    (`scheduling_spec.cmd`): the CPU server where `cmd` runs tau2train's CPU worker, with
    TAU2TRAIN_CPU_SERVER passed on from this process's environment if set."""
    from tau2train.schemas.groups import POLICY_SERVERS

    words = (cmd or "").split()
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else None
    env = {INFERENCE_SERVER_ENV: CPU} if module == POLICY_SERVERS[CPU] else {}
    if env and os.environ.get(CPU_SERVER_ENV):
        env[CPU_SERVER_ENV] = os.environ[CPU_SERVER_ENV]
    return env
