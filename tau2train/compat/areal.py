"""AReaL internals tau2train relies on (areal 1.0.4); guarded by tests/test_compat.py.

Nothing here imports AReaL: the rollout side reads AReaL's workflow context only where AReaL
has loaded it (inside its rollout workers), and the entry point undoes what AReaL's modules
did to logging once they are loaded.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from typing import Any

WORKFLOW_CONTEXT = "areal.infra.workflow_context"
STATS_TRACKER = "areal.utils.stats_tracker"
# loaded in AReaL's rollout workers, where its engine runs the workflows
REMOTE_ENGINE = "areal.infra.remote_inf_engine"
PROXY_WORKFLOW = "areal.experimental.openai.proxy.workflow"
CLI_ARGS = "areal.api.cli_args"


def restore_stdlib_logging() -> None:
    """AReaL's `getLogger` (areal/utils/logging.py) swaps logging's root and manager for its
    own, so loggers created later (Hydra's) hang off a root `logging.config` never configures.
    Point them back at `logging.root`."""
    logging.Logger.root = logging.root
    logging.Logger.manager = logging.Manager(logging.root)


def rollout_task_id() -> int | None:
    """The id of the AReaL rollout task running in this context: None outside AReaL (the
    module not loaded) and for evaluation tasks (`is_eval`), which no filter judges."""
    context = sys.modules.get(WORKFLOW_CONTEXT)
    if context is None:
        return None
    current = context.get()
    return None if current.is_eval else current.task_id


def stats_scope() -> Any | None:
    """AReaL's stats tracker in the scope of the running rollout (`rollout/` while training,
    `eval-rollout/` for validation); None outside AReaL."""
    context = sys.modules.get(WORKFLOW_CONTEXT)
    tracker = sys.modules.get(STATS_TRACKER)
    if context is None or tracker is None:
        return None
    return tracker.get(context.stat_scope())


# The RPC through which AReaL's RolloutController collects its workers' stats.
EXPORT_STATS_RPC = "export_stats"


def report_sums(controller: Any, prefixes: tuple[str, ...]) -> bool:
    """Make `controller.export_stats()` (AReaL's RolloutController, this one instance) report
    every key that starts with one of `prefixes` as the sum of what the workers recorded under
    it since the last export, not the mean.

    AReaL 1.0.4 averages every scalar its rollout workers recorded and keeps no count
    (areal/infra/controller/rollout_controller.py:1113-1128), so a 0/1 recorded per episode
    reaches the stats logger as a share. Each worker's raw export carries `<key>__count`:
    AReaL's own call is left to run, its RPC's answers are kept on the way, and each sum is
    mean × count, added over the workers. False (nothing changed) for a controller without
    that RPC (AReaL's RolloutControllerV2): its stats stay shares."""
    export, rpc = getattr(type(controller), "export_stats", None), getattr(controller, "_collective_rpc", None)
    if export is None or rpc is None:
        return False

    def export_stats() -> dict[str, float]:
        raw: list[dict[str, float]] = []

        def keeping(*args, **kwargs):
            answers = rpc(*args, **kwargs)
            if kwargs.get("method") == EXPORT_STATS_RPC:
                raw.extend(answers)
            return answers

        controller._collective_rpc = keeping
        try:
            stats = export(controller)
        finally:
            controller._collective_rpc = rpc
        stats.update(summed(raw, prefixes))
        return stats

    controller.export_stats = export_stats
    return True


def summed(raw: list[dict[str, float]], prefixes: tuple[str, ...]) -> dict[str, float]:
    """Per key with one of `prefixes`: Σ over the workers' exports of mean × `<key>__count`."""
    sums: dict[str, float] = {}
    for worker in raw:
        for key, mean in worker.items():
            if key.startswith(prefixes) and not key.endswith("__count"):
                sums[key] = sums.get(key, 0.0) + mean * worker.get(key + "__count", 0)
    return {key: round(value, 6) for key, value in sums.items()}


def drop_episodes_alone(failure: type[BaseException]) -> bool:
    """Have AReaL's OpenAIProxyWorkflow, which runs an agent's episode, return None for an
    episode whose agent raised `failure`, instead of re-raising it. AReaL 1.0.4 gathers a
    group's episodes without `return_exceptions` (areal/infra/remote_inf_engine.py:89): a
    raise drops the whole group, while None drops only that episode, the group going on with
    the rest ("using remaining results", :91-102).

    Only in a process where AReaL's engine runs workflows (its rollout workers); False
    elsewhere, nothing changed. Installed once per process."""
    if REMOTE_ENGINE not in sys.modules:
        return False
    proxy_workflow = importlib.import_module(PROXY_WORKFLOW).OpenAIProxyWorkflow
    original = proxy_workflow.arun_episode
    if getattr(original, "drops_alone", None) is not None:
        return True

    @functools.wraps(original)
    async def arun_episode(self, engine, data):
        try:
            return await original(self, engine, data)
        except failure:
            return None

    arun_episode.drops_alone = failure
    proxy_workflow.arun_episode = arun_episode
    return True


def launch_sglang_as(module: str, *extra: str) -> None:
    """Make this process start its inference servers as `python -m <module> <extra> <AReaL's
    SGLang flags>` with this interpreter: the rollout worker of a CPU run (tau2train.serving).

    AReaL 1.0.4 has no setting that points rollout at another server: the trainer builds the
    server's arguments (`SGLangConfig.build_args`, areal/trainer/rl_trainer.py:1039), its
    rollout worker turns them into a command with the static `SGLangConfig.build_cmd_from_args`
    (areal/engine/sglang_remote.py:354; areal/api/cli_args.py:1910) and starts it. Only that
    method is replaced, in this process; the flags are AReaL's own (`get_py_cmd`: host, the
    free port and model path it chose, and every other sglang flag, which the CPU server
    accepts and ignores)."""
    cli_args = importlib.import_module(CLI_ARGS)

    def build_cmd_from_args(args: dict[str, Any]) -> list[str]:
        cmd = cli_args.get_py_cmd(module, args)
        return [sys.executable, *cmd[1:3], *extra, *cmd[3:]]

    cli_args.SGLangConfig.build_cmd_from_args = staticmethod(build_cmd_from_args)
