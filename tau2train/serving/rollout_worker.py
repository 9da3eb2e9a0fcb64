"""AReaL's own worker process (its RPC server), whose inference servers are the CPU server:
what `actor.scheduling_spec.0.cmd` runs when allocation.inference_server=cpu.

    python -m tau2train.serving.rollout_worker --port ...   (AReaL's scheduler adds the flags)

Everything is AReaL's `areal.infra.rpc.rpc_server`, run as is with this process's argv, except
the command its rollout worker starts SGLang with (compat.areal.launch_sglang_as): `python -m
tau2train.serving.cpu_sglang <AReaL's SGLang flags>`, and its FSDP engine, which computes the
vocabulary-wide work only at the positions trained (compat.areal.logits_only_where_read). The
actor and rollout workers run the same command (AReaL's local scheduler starts every role from
`scheduling_spec.cmd`); each uses the patch its role needs. Under Ray, which runs no
`scheduling_spec.cmd`, the same patches (`patch_worker`) are applied in Ray's worker processes
by tau2train.serving.ray_worker.
"""

from __future__ import annotations

import runpy
import sys

from tau2train.compat.areal import launch_sglang_as, logits_only_where_read_once_loaded

SERVER_MODULE = "tau2train.serving.cpu_sglang"
# The server shares the machine's cores with AReaL's trainer: one thread generates several
# times faster than two that wait on each other (benchmarks/cpu_server.py --threads).
SERVER_ARGS = ("--torch-threads", "1")
RPC_SERVER = "areal.infra.rpc.rpc_server"


def patch_worker(server_module: str = SERVER_MODULE, *server_args: str) -> None:
    """This process's AReaL worker (its RPC server, local/Slurm or Ray) starts its inference
    servers as `python -m <server_module> <server_args>`, and its FSDP engine computes logits
    only where they are read (a CPU's training step is otherwise ~40x the work:
    compat.areal.logits_only_where_read)."""
    launch_sglang_as(server_module, *server_args)
    logits_only_where_read_once_loaded()


def run_worker(server_module: str = SERVER_MODULE, *server_args: str) -> None:
    """AReaL's RPC server in this process, patched as `patch_worker` says."""
    patch_worker(server_module, *server_args)
    sys.argv[0] = RPC_SERVER
    runpy.run_module(RPC_SERVER, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run_worker(SERVER_MODULE, *SERVER_ARGS)
