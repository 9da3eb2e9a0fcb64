"""What each job Hydra launches runs: a Slurm job submitted through hydra-submitit-launcher
(pickled by reference, so it imports this module in the job), or a point of a Hydra
sweeper's sweep; and the job record (job.json) every run keeps, launched so or on this machine
(tau2train.launch.clusters.local)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tau2train.config.checked import Checked
from tau2train.config.compose import Composed, to_composed
from tau2train.config.errors import ConfigError
from tau2train.config.registry import register
from tau2train.launch.modes import checked, run_here
from tau2train.records.job import JobState, now, read_job_record, record_restorer, update_job_record
from tau2train.reports.sweep import run_reward


def run_description(job: Composed) -> dict[str, Any]:
    """What a record says about the run itself, whoever writes it first."""
    exp = job.config
    return {
        "mode": exp.mode, "experiment_name": exp.experiment_name, "trial_name": exp.trial_name,
        "overrides": job.overrides, "train_split": exp.train_dataset.split,
        "valid_split": exp.valid_dataset.split if exp.valid_dataset else None,
        "reward": job.choices.get("reward"),
    }


def slurm_job_id() -> str | None:
    """This job's id as submitit names it (array tasks: <array>_<index>); None outside one."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":  # set by submitit's sbatch script
        return None
    import submitit

    return submitit.JobEnvironment().job_id


def run_submitted_job(cfg: DictConfig) -> str:
    """Record the job, validate it (once, here: the data and checkpoints as the job finds
    them) and run it; returns its run directory. A requeued job runs it again with the same
    overrides."""
    register()  # the job resolves its config here (tau2train's resolvers)
    return run_recorded(to_composed(cfg))


def run_recorded(composed: Composed, job: Checked | None = None) -> str:
    """Run `composed` in this process, its job.json saying so as it starts and ends (what the
    sweep report reads); `job`: it validated already (a run launched here: input its run
    refuses as it starts leaves no record, as it leaves nothing else), else it is validated in
    the record (a failure there recorded). Returns the run directory."""
    run_dir = composed.config.run_dir
    restore = record_restorer(run_dir)
    starts = read_job_record(run_dir).starts + 1  # more than 1 after a requeue
    update_job_record(run_dir, **run_description(composed), state=JobState.RUNNING, slurm_job_id=slurm_job_id(),
                      host=socket.gethostname(),
                      started_at=now(), ended_at=None, error=None, starts=starts)
    try:
        run_here(job or checked(composed))
    except SystemExit:
        # submitit's checkpoint hook requeued this job (preempted or timed out)
        update_job_record(run_dir, state=JobState.REQUEUED, ended_at=now())
        raise
    except BaseException as error:
        if job is not None and isinstance(error, ConfigError):
            restore()  # refused as it started, here: as if never launched
        else:
            update_job_record(run_dir, state=JobState.FAILED, ended_at=now(),
                              error=f"{type(error).__name__}: {error}")
        raise
    update_job_record(run_dir, state=JobState.COMPLETED, ended_at=now())
    return run_dir


def run_sweeper_job(cfg: DictConfig) -> float | None:
    """A Hydra sweeper's job: run it, and hand the sweeper the reward it optimises."""
    return run_reward(Path(run_submitted_job(cfg)))
