"""`mode=train`: AReaL's trainer with the τ² workflow, the τ² datasets and the group filter.

The trainer class is a config entry (`trainer._target_`, AReaL's PPOTrainer by default): the
GPU boundary, where tests put a recording stand-in. Everything before the call is real.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import secrets
from typing import Any

from tau2train.config import areal_tau2
from tau2train.config.checked import Checked
from tau2train.config.errors import ConfigError
from tau2train.config.placement import worker_sbatch_env
from tau2train.config.ray_checks import resolved_address
from tau2train.launch.host_loss import stop_on_host_loss
from tau2train.launch.outage import stop_on_user_sim_outage
from tau2train.launch.plan import write_areal_config
from tau2train.records.layout import generated_dir
from tau2train.schemas import ExperimentConfig, PPOConfig
from tau2train.schemas.clusters import RAY_ADDRESS_ENV

WORKFLOW = "tau2train.rollout.workflow.Tau2AgentWorkflow"


def trainer_class(target: str, key: str = "trainer._target_") -> type:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            key,
            target,
            f"cannot be imported ({type(e).__name__}: {e})",
            valid="an importable class, e.g. areal.PPOTrainer",
            fix=f"correct {key} (module.Class)",
        ) from None


def gpus_on_this_machine() -> int:
    import torch

    return torch.cuda.device_count()


def check_local_gpus(exp: ExperimentConfig) -> None:
    """cluster=local runs on this machine: it must have the GPUs the layout uses (unless the
    run is declared CPU-only: trainer.cpu_only)."""
    if exp.scheduler.type != "local" or exp.trainer.cpu_only:
        return
    needed, found = exp.cluster.n_gpus_per_node, gpus_on_this_machine()
    if found < needed:
        raise ConfigError(
            "cluster.n_gpus_per_node",
            needed,
            f"the layout needs {needed} GPUs on this machine and it has {found}",
            valid=f"at most {found} on this machine, or a cluster with the GPUs",
            fix="check the plan with dry_run=true, then run where the GPUs are (cluster=slurm); "
            "trainer.cpu_only=true for a CPU rehearsal",
        )


def make_storage_dirs(exp: ExperimentConfig) -> None:
    """AReaL's schedulers refuse a cluster.fileroot or name-resolve root that does not exist
    (areal/infra/scheduler/local.py:141-145, areal/utils/fs.py:74): make them, once the run is
    known to start (after every check), so bad input leaves no directory behind."""
    os.makedirs(exp.cluster.fileroot, exist_ok=True)
    if exp.cluster.name_resolve.type == "nfs":
        os.makedirs(exp.cluster.name_resolve.nfs_record_root, exist_ok=True)


def agent_gen_args(exp: ExperimentConfig, temperature: float | None = None) -> dict[str, Any]:
    """The policy's sampling arguments for an episode's completions, from gconfig."""
    g = exp.gconfig
    return {
        "temperature": g.temperature if temperature is None else temperature,
        "top_p": g.top_p,
        "max_completion_tokens": g.max_new_tokens,
    }


def workflow_kwargs(exp: ExperimentConfig, temperature: float | None = None) -> dict[str, Any]:
    """Tau2AgentWorkflow's constructor arguments (plain data: AReaL ships them to workers)."""
    concurrent = exp.rollout.max_concurrent_rollouts or exp.rollout.consumer_batch_size
    return {
        "econfig": dataclasses.asdict(exp.econfig),
        "gen_args": agent_gen_args(exp, temperature),
        "timeout": exp.trainer.episode_timeout,
        "dump_dir": str(generated_dir(exp.run_dir)),
        # AReaL runs n_samples episodes for each of its concurrent rollouts
        "max_concurrent_episodes": concurrent * exp.gconfig.n_samples,
        # a group's episodes: AReaL's, for what a failed episode costs (rollout/lost_episodes.py)
        "group_size": exp.gconfig.n_samples,
        "min_episodes": min_episodes(exp),
        # what an episode earns (the reward group): its terms are imported on the workers
        "reward": dataclasses.asdict(exp.reward),
    }


def min_episodes(exp: ExperimentConfig) -> int:
    """The fewest episodes a GRPO group trains on (group_filter.min_episodes, at most the group)."""
    return exp.group_filter.min_episodes_in(exp.gconfig.n_samples)


def ppo_config(exp: ExperimentConfig) -> PPOConfig:
    """The PPOConfig part of the experiment, as AReaL's trainer takes it, with a fresh admin key
    for AReaL's rollout proxy: AReaL refuses its default key on a non-loopback host (every
    rollout worker of a real cluster), and a key in a config would land in saved configs and
    job scripts (validation refuses one). Made here, in the process that runs the trainer, it
    reaches the workers only through AReaL's own calls. (AReaL's stats logger does record its
    whole config, this key included, in the wandb run; the key dies with the run's proxy.)"""
    config = PPOConfig(**{f.name: getattr(exp, f.name) for f in dataclasses.fields(PPOConfig)})
    if config.rollout.agent is None:  # no proxy-mode agent, no proxy
        return config
    agent = dataclasses.replace(config.rollout.agent, admin_api_key=secrets.token_urlsafe(32))
    return dataclasses.replace(config, rollout=dataclasses.replace(config.rollout, agent=agent))


def train_rows(checked: Checked):
    """AReaL's train dataset: the domain's τ² split (data=tau2), or every AReaL-tau2-data row
    of data.domains, each naming its domain, file line and snapshot, mixed by data.weights
    (data=areal_tau2)."""
    from tau2train.rollout.datasets import rows_dataset, tau2_dataset

    exp = checked.config
    if checked.rl_data is not None:
        return rows_dataset(areal_tau2.mixed_rows(checked.rl_data, exp.data.weights, exp.seed), exp.min_dataset_size)
    return tau2_dataset(exp.econfig.domain, exp.train_dataset.split, exp.min_dataset_size, exp.domain.tasks)


def valid_rows(checked: Checked):
    """AReaL's validation dataset: τ²'s valid split of every trained domain, each row naming
    its domain (the workflow plays it there and AReaL's stats logger gets its pass^1 under
    eval-rollout/<domain>/), None without validation."""
    from tau2train.rollout.datasets import rows_dataset, task_rows

    exp = checked.config
    if not exp.valid_dataset:
        return None
    split = exp.valid_dataset.split
    rows = [{**row, "domain": domain} for domain in checked.domains
            for row in task_rows(domain, split, only=exp.domain.tasks if domain == exp.econfig.domain else None)]
    return rows_dataset(rows, exp.min_dataset_size)


def run_training(checked: Checked) -> None:
    from tau2train.rollout.group_filter import GroupFilter

    exp = checked.config
    trainer_cls = trainer_class(exp.trainer._target_)
    check_local_gpus(exp)
    train_dataset = train_rows(checked)
    valid_dataset = valid_rows(checked)
    make_storage_dirs(exp)
    if exp.scheduler.type == "slurm":  # the role jobs AReaL submits from here: the run's partition, ...
        os.environ.update(worker_sbatch_env(exp.slurm))
    if exp.scheduler.type == "ray":  # the cluster AReaL's Ray scheduler joins (PPOTrainer.own_scheduler)
        os.environ[RAY_ADDRESS_ENV] = resolved_address(exp)
    write_areal_config(exp)  # the run directory names its checkpoints (eval.checkpoint=<run dir>)
    with (stop_on_user_sim_outage(checked.user_sims, exp.econfig.user_llm_outage_s),
          trainer_cls(ppo_config(exp), train_dataset=train_dataset, valid_dataset=valid_dataset) as trainer,
          # watched while training only: the trainer's own way out cancels the role jobs
          stop_on_host_loss(exp.scheduler.type, exp.experiment_name, exp.trial_name)):
        trainer.train(
            workflow=WORKFLOW,
            workflow_kwargs=workflow_kwargs(exp),
            eval_workflow=WORKFLOW,
            eval_workflow_kwargs=workflow_kwargs(exp, exp.trainer.valid_temperature),
            dynamic_filter_fn=GroupFilter(**{**dataclasses.asdict(exp.group_filter), "min_episodes": min_episodes(exp)}),
        )
