"""AReaL internals tau2train relies on (areal 1.0.4); guarded by tests/test_compat.py.

Nothing here imports AReaL at module level (what needs AReaL imports it inside a function, or
is handed AReaL's class): the rollout side reads AReaL's workflow context only where AReaL has
loaded it (inside its rollout workers), and the entry point undoes what AReaL's modules did
to logging once they are loaded. What is here: the logging root; the rollout task id and
stats scope of AReaL's workflow context; stats reported as sums; a failed episode dropped
alone; the rollout worker's inference-server command; the FSDP engine's logits computed only
where read; and the trainer's private hooks (its scheduler, the rollout proxies' start) with
the Slurm scheduler built from the workers' spec (tau2train.launch.trainer).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
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


FSDP_ENGINE = "areal.engine.fsdp_engine"
# The methods of AReaL's FSDPEngine that turn a micro-batch's logits into per-token results.
LOGIT_READERS = ("_compute_logprobs_entropy", "_compute_logprobs", "_get_vocab_min_max_logits")


def live_rows(mb_input: dict[str, Any], length: int):
    """The positions of a packed micro-batch (padded to `length`) whose next-token results are
    read: the loss mask, and the mask moved back one token (AReaL rolls it before the loss,
    areal/trainer/ppo/actor.py:176, sft/lm_engine.py:29, but not before recomputing
    log-probabilities), so either alignment is covered. None without a loss mask."""
    import torch

    mask = mb_input.get("loss_mask")
    if mask is None:
        return None
    mask = mask.reshape(-1).bool()
    rows = torch.nonzero(mask | torch.roll(mask, shifts=-1), as_tuple=True)[0]
    return rows[rows < length]


class _AfterImport:
    """A meta-path finder that runs `then(module)` once `name` has been imported."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        exec_module = spec.loader.exec_module

        def exec_then(module):
            exec_module(module)
            self.then(module)

        spec.loader.exec_module = exec_then
        return spec


def when_imported(name: str, then) -> None:
    """Run `then(module)` as soon as module `name` is imported (now, if it is loaded already):
    a patch that costs nothing in a process that never loads what it patches."""
    if name in sys.modules:
        then(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, then))


def logits_only_where_read_once_loaded() -> None:
    """logits_only_where_read, applied when AReaL's FSDP engine loads (its actor worker), so
    that other workers do not pay for importing it (~10-30 s on a CPU)."""
    when_imported(FSDP_ENGINE, lambda module: logits_only_where_read())


def logits_only_where_read() -> bool:
    """Make AReaL's FSDP engine (in this process) compute the vocabulary-wide work of each
    micro-batch only at the positions whose results are read, not at every prompt token.

    On a CPU, the logits of a 152k-token vocabulary at ~800 positions per sequence (their
    log-softmax, entropy and gradient) cost ~40x what the ~20 trained positions need, and
    dominate a training step. The model is given transformers' own `logits_to_keep` (those
    positions, `live_rows`), and the three methods reading logits (LOGIT_READERS) run AReaL's
    own code on the rows kept, scattering their results back to full length: zeros where
    nothing reads them (under the loss mask: no loss, no statistic). The values read are
    AReaL's own, exactly. Only without sequence or tensor parallelism and tree training
    (a CPU run's engine); False, nothing changed, where AReaL's engine is not loaded."""
    engine_module = sys.modules.get(FSDP_ENGINE) or importlib.import_module(FSDP_ENGINE)
    engine = engine_module.FSDPEngine
    if getattr(engine._prepare_mb_inputs, "keeps_live_rows", False):
        return True
    prepare = engine._prepare_mb_inputs

    @functools.wraps(prepare)
    def _prepare_mb_inputs(self, mb_item):
        inputs, ctx = prepare(self, mb_item)
        self._tau2train_live = None
        plain = self.parallel_helper.sp_size == 1 and self.parallel_helper.tp_size == 1
        if plain and not self.enable_tree_training and not self.config.is_critic:
            length = inputs["input_ids"].shape[-1]
            rows = live_rows(ctx.mb_input, length)
            if rows is not None:
                inputs["logits_to_keep"] = rows
                self._tau2train_live = (rows, length)
        return inputs, ctx

    _prepare_mb_inputs.keeps_live_rows = True
    engine._prepare_mb_inputs = _prepare_mb_inputs
    for name in LOGIT_READERS:
        setattr(engine, name, _on_live_rows(getattr(engine, name)))
    return True


def _on_live_rows(read):
    """`read` (a LOGIT_READERS method) on the kept rows' logits, its results scattered back."""

    @functools.wraps(read)
    def on_live_rows(self, logits, *args, **kwargs):
        kept = getattr(self, "_tau2train_live", None)
        if kept is None or logits.shape[0] == kept[1]:
            return read(self, logits, *args, **kwargs)
        rows, length = kept
        if args and isinstance(args[0], dict):  # (inputs, ...): labels from the kept rows' next tokens
            import torch

            labels = torch.roll(args[0]["input_ids"].reshape(-1), shifts=-1)[rows]
            args = ({**args[0], "input_ids": torch.roll(labels, shifts=1)}, *args[1:])
        results = read(self, logits, *args, **kwargs)
        return tuple(_scattered(r, rows, length) for r in results) if isinstance(results, tuple) \
            else _scattered(results, rows, length)

    return on_live_rows


def _scattered(values, rows, length: int):
    """`values` of the kept rows placed at `rows` of a zero tensor of `length` (differentiable)."""
    return values.new_zeros((length, *values.shape[1:])).index_put((rows,), values)


# --- AReaL's PPOTrainer: the private hooks tau2train's trainer (tau2train.launch.trainer) uses
TRAINER = "areal.trainer.rl_trainer"
SCHEDULER_HOOK = "_init_scheduler"  # PPOTrainer.__init__ builds its scheduler with it
PROXY_HOOK = "_ensure_proxy_started"  # PPOTrainer.train starts the rollout proxies with it
PROXY_STARTED = "_proxy_started"  # ... which sets this flag once they run
SLURM_SCHEDULER = "areal.infra.scheduler.slurm"


def with_trainer_hooks(base: type) -> type:
    """A subclass of `base` (AReaL's PPOTrainer) whose two private hooks call methods a subclass
    of it may define instead:

    - `own_scheduler()`: the scheduler AReaL's constructor uses; None (the default): AReaL's
      own, from `_init_scheduler`, which builds each scheduler with its constructor's defaults
      (areal/trainer/rl_trainer.py:922);
    - `proxies_started()`: called once, right after AReaL's `_ensure_proxy_started` (which
      `train()` calls, :587) has started the rollout proxies (its `_proxy_started` flag).

    AReaL's `_ensure_proxy_started` runs inside compat.areal_ray.proxy_start_allowed: past its
    refusal of Ray (:1395) where the scheduler is compat.areal_ray's, which starts proxies."""

    class HookedPPOTrainer(base):
        def own_scheduler(self) -> Any | None:
            return None

        def proxies_started(self) -> None:
            pass

        def _init_scheduler(self):
            scheduler = self.own_scheduler()
            return super()._init_scheduler() if scheduler is None else scheduler

        def _ensure_proxy_started(self):
            from tau2train.compat.areal_ray import proxy_start_allowed

            was_started = getattr(self, PROXY_STARTED)
            with proxy_start_allowed(self):  # AReaL refuses proxies on Ray (compat.areal_ray)
                super()._ensure_proxy_started()
            if not was_started and getattr(self, PROXY_STARTED):
                self.proxies_started()

    return HookedPPOTrainer


def slurm_scheduler(exp_config: Any, container_type: str, container_mounts: str | None,
                    srun_additional_args: str) -> Any:
    """AReaL's SlurmScheduler for `exp_config` with the workers' container, mounts and srun
    arguments, which AReaL's trainer leaves at the constructor's defaults (`SlurmScheduler(
    exp_config=...)`: every worker in `singularity exec ... --bind /storage:/storage`,
    areal/infra/scheduler/slurm.py:898-906)."""
    map_slurm_end_states()
    slurm = importlib.import_module(SLURM_SCHEDULER)
    return slurm.SlurmScheduler(exp_config=exp_config, container_type=container_type,
                                container_mounts=container_mounts, srun_additional_args=srun_additional_args)


SLURM_UTILS = "areal.infra.utils.slurm"
# Slurm job states AReaL 1.0.4's squeue reader lacks (areal/infra/utils/slurm.py:28-38 maps 9 of
# them; `query_jobs` raises KeyError on the others), as the JobState they mean: a role job whose
# node failed (NODE_FAIL) made every later status check of the run, its teardown's included,
# raise KeyError instead of reporting the job failed.
SLURM_STATES = {"NODE_FAIL": "FAILED", "BOOT_FAIL": "FAILED", "PREEMPTED": "FAILED", "REVOKED": "FAILED",
                "SPECIAL_EXIT": "FAILED", "CONFIGURING": "PENDING", "REQUEUED": "PENDING",
                "SUSPENDED": "PENDING", "STOPPED": "PENDING", "RESIZING": "RUNNING",
                "SIGNALING": "RUNNING", "STAGE_OUT": "RUNNING"}


def map_slurm_end_states() -> None:
    """Add SLURM_STATES to AReaL's squeue state table, leaving the states it maps as they are."""
    utils = importlib.import_module(SLURM_UTILS)
    for state, meaning in SLURM_STATES.items():
        utils.STATUS_MAPPING.setdefault(state, getattr(utils.JobState, meaning))
