"""AReaL's PPOTrainer, with four gaps of AReaL 1.0.4 closed (each method says where):

* its Slurm scheduler is built from the workers' scheduling spec: AReaL builds
  `SlurmScheduler(exp_config=...)` with the constructor's defaults
  (areal/trainer/rl_trainer.py:922), so every worker ran in `singularity exec ... --bind
  /storage:/storage` whatever the spec's `container_type`, `mount` and `srun_additional_args`
  said (areal/infra/scheduler/slurm.py:898-906); host workers run this interpreter;
* every worker its scheduler started is stopped when construction or `close()` fails, and
  Slurm worker jobs an earlier controller of the same trial left behind are cancelled;
* after a resume, the rollout proxies get the recovered weight version;
* the episodes and groups lost to failures outside the policy reach the stats as counts
  (tau2train.rollout.lost_episodes), not as the shares AReaL's averaging makes of them.

AReaL's private hooks (its scheduler's construction, the rollout proxies' start) are reached
through tau2train.compat.areal (`with_trainer_hooks`), whose guards are in tests/test_compat.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

from areal import PPOTrainer as ArealPPOTrainer

from tau2train.compat.areal import report_sums, slurm_scheduler, with_trainer_hooks
from tau2train.compat.areal_ray import ray_scheduler
from tau2train.launch.role_jobs import role_jobs, slurm_output
from tau2train.rollout.lost_episodes import COUNTED
from tau2train.schemas.clusters import RAY_ADDRESS_ENV
from tau2train.serving.ray_worker import worker_env as ray_worker_env

logger = logging.getLogger("tau2train.launch.trainer")

# AReaL's stats scope of training rollouts (areal.infra.workflow_context.stat_scope)
ROLLOUT_SCOPE = "rollout"

PYTHON_NAMES = ("python", "python3")


def host_python(config: Any) -> Any:
    """`config` with every worker command that starts with `python`/`python3` (AReaL's default
    `python3 -m areal.infra.rpc.rpc_server` included) starting with this interpreter instead,
    in every `scheduling_spec` at any depth, for workers run on the host (no container).

    AReaL's local scheduler does the same (areal/infra/scheduler/local.py:823-824); its Slurm
    scheduler runs the command as written, so `python` would be whatever the node's PATH finds,
    seldom the environment this job runs in (which must be on storage the nodes see)."""
    if not dataclasses.is_dataclass(config):
        return config
    changes = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "scheduling_spec" and isinstance(value, (tuple, list)):
            changes[field.name] = type(value)(_with_this_python(spec) for spec in value)
        elif dataclasses.is_dataclass(value):
            replaced = host_python(value)
            if replaced is not value:
                changes[field.name] = replaced
    return dataclasses.replace(config, **changes) if changes else config


def _with_this_python(spec: Any) -> Any:
    words = (spec.cmd or "").split(maxsplit=1)
    if spec.container_type != "none" or not words or words[0] not in PYTHON_NAMES:
        return spec
    return dataclasses.replace(spec, cmd=" ".join([sys.executable, *words[1:]]))


def cancel_leftover_worker_jobs(experiment: str, trial: str) -> list[str]:
    """Cancel this trial's worker jobs that an earlier controller left queued or running (it
    was killed hard, or its node failed, before it could cancel them; they run until the
    controller's time limit), before new ones are submitted: they would hold GPUs for nobody.
    Returns the ids cancelled; Slurm not answering is left to AReaL's own calls to report."""
    leftover = role_jobs(experiment, trial, ended=False) or []
    if leftover:
        slurm_output(["scancel", *(job.job_id for job in leftover)])
        jobs = ", ".join(f"{job.job_id} ({job.name})" for job in leftover)
        print(
            f"warning: cancelled {len(leftover)} worker job(s) an earlier controller of "
            f"{experiment}/{trial} left behind: {jobs}",
            file=sys.stderr, flush=True,
        )
    return [job.job_id for job in leftover]


class PPOTrainer(with_trainer_hooks(ArealPPOTrainer)):
    """AReaL's PPOTrainer; on `scheduler.type=slurm` its workers run as `actor.scheduling_spec[0]`
    says (container or host, mounts, srun arguments), host workers with this interpreter.

    Whatever its scheduler started is stopped on every way out: AReaL's `close()` (its
    `__exit__`) destroys the engines one by one and stops at the first that fails, and a
    constructor that raises after some workers are up (a server that never answers, a model
    that does not load) never reaches `__exit__` at all, leaving the workers and their
    inference servers running. Both end here with the scheduler deleting every worker it
    started (areal/infra/scheduler/local.py:1089, slurm.py:1290: processes trees, or Slurm
    jobs, a no-op for those already gone)."""

    def __init__(self, config, *args, **kwargs):
        if config.scheduler.type == "slurm":
            config = host_python(config)
        try:
            super().__init__(config, *args, **kwargs)
        except BaseException:
            self.stop_workers()
            raise
        if not report_sums(self.rollout, tuple(f"{ROLLOUT_SCOPE}/{key}" for key in COUNTED)):
            logger.warning("%s keeps no stats counts: rollout/tau2/episodes_failed/* and "
                           "groups_dropped_whole are shares of the step's episodes and groups",
                           type(self.rollout).__name__)

    def proxies_started(self) -> None:
        """The recovered weight version handed to the rollout proxies AReaL just started.

        On a resume AReaL sets the recovered version (areal/trainer/rl_trainer.py:399) before
        `train()` starts the rollout proxies (:587), and `set_version` reaches proxies only
        once they run (areal/infra/controller/rollout_controller.py:1096): the first batch
        after a resume would be tagged version 0, which staleness control and the
        off-policy correction then read as that many versions old."""
        for rollout in (self.rollout, self.eval_rollout):
            version = rollout.get_version() if rollout is not None else 0
            if version:
                rollout.set_version(version)

    def close(self):
        try:
            super().close()
        finally:
            self.stop_workers()

    def __exit__(self, exc_type, exc, tb):
        """AReaL's (`close()`), except that on the way out of an error, an error in closing is
        logged, not raised: the error that ended the run stays the one the user sees (a host lost
        mid-run: AReaL's close asks after the lost role's job and fails on the way). The
        workers are stopped either way (`close`)."""
        if exc is None:
            return super().__exit__(exc_type, exc, tb)
        try:
            super().__exit__(exc_type, exc, tb)
        except Exception:  # noqa: BLE001 - reported; the run's own error goes on
            logger.exception("closing AReaL's trainer after %s failed too", exc_type.__name__)
        return False

    def stop_workers(self) -> None:
        """Delete every worker the scheduler started; never raises (it runs on the way out of
        an error, whose message must stay the one the user sees)."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is None:
            return
        try:
            scheduler.delete_workers(None)
        except Exception:  # noqa: BLE001 - reported, the original error goes on
            logger.exception("stopping AReaL's workers failed; check for leftover processes or jobs")

    def own_scheduler(self) -> Any | None:
        """On `scheduler.type=slurm`, AReaL's Slurm scheduler placing the workers as
        `actor.scheduling_spec[0]` says, once this trial's leftover worker jobs are cancelled;
        on `scheduler.type=ray`, AReaL's Ray scheduler made to fork workers and start the
        rollout proxies (compat.areal_ray), on the Ray cluster at $RAY_ADDRESS (what
        ray.address resolves to: launch.train), its Ray workers patched as the workers' command would patch them
        (serving.ray_worker); None (AReaL's own scheduler) otherwise."""
        if self.config.scheduler.type == "ray":
            address = os.environ.get(RAY_ADDRESS_ENV)
            if not address:
                raise RuntimeError(f"scheduler.type=ray needs the Ray cluster's address in ${RAY_ADDRESS_ENV} "
                                   "(tau2train sets it from ray.address)")
            return ray_scheduler(self.config, address=address,
                                 worker_setup_env=ray_worker_env(self.config.actor.scheduling_spec[0].cmd))
        if self.config.scheduler.type != "slurm":
            return None
        cancel_leftover_worker_jobs(self.config.experiment_name, self.config.trial_name)
        spec = self.config.actor.scheduling_spec[0]
        return slurm_scheduler(self.config, container_type=spec.container_type,
                               container_mounts=spec.mount or None,
                               srun_additional_args=spec.srun_additional_args)
