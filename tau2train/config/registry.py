"""Everything Hydra and OmegaConf must know before a tau2train config is composed or resolved,
registered in one place: the schemas in Hydra's ConfigStore (`tau2train_schema`, and
`schema/<group>` for each group's YAML choices to name), the Slurm launcher's config node, and
tau2train's OmegaConf resolvers. Idempotent; every process that composes or resolves a config
calls `register()` first (the CLI, the user-sim server, a Slurm job before it resolves its own).
"""

from __future__ import annotations

from areal.api.cli_args import ClusterSpecConfig
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from hydra_plugins.tau2train_slurm_launcher import config as launcher_config
from tau2train.config.catalog import tau2_data_dir
from tau2train.records.user_sim import USER_SIM_URL_RESOLVER, recorded_url
from tau2train.schemas import (
    AllocationSpec,
    DataSpec,
    DomainSpec,
    ExperimentConfig,
    ModelSpec,
    SlurmSpec,
    TrackingSpec,
    UserSimSpec,
)

ROOT_SCHEMA = "tau2train_schema"
# The schema each group's YAML choices name in their defaults (`/schema/<group>`).
GROUP_SCHEMAS = {
    "model": ModelSpec,
    "domain": DomainSpec,
    "data": DataSpec,
    "allocation": AllocationSpec,
    "cluster": ClusterSpecConfig,
    "slurm": SlurmSpec,
    "tracking": TrackingSpec,
    "user_sim": UserSimSpec,
}
TAU2_DATA_DIR_RESOLVER = "tau2train.tau2_data_dir"
EVAL_JOB_GPUS_RESOLVER = "tau2train.eval_job_gpus"
STAGE_SUFFIX_RESOLVER = "tau2train.stage_suffix"


def eval_job_gpus(mode: str, checkpoint: str | None, checkpoint_step, server_gpus: int,
                  asked: int | None) -> int | None:
    """GPUs the Slurm job asks for: a checkpoint evaluation serves its model inside the job
    (`asked`, eval.server.slurm_gpus_per_node, overrides the server's count; 0 asks for none);
    the training controller and endpoint evaluations need none."""
    serving = mode == "eval" and (checkpoint is not None or checkpoint_step is not None)
    gpus = server_gpus if asked is None else asked
    return gpus if serving and gpus else None


def stage_suffix(mode: str) -> str:
    """What the experiment name gets for a stage: "-sft" for mode=sft, so that SFT and the RL
    run after it keep their checkpoints and recover state apart; nothing otherwise."""
    return "-sft" if mode == "sft" else ""


def register() -> None:
    cs = ConfigStore.instance()
    # Storing builds every schema's OmegaConf node (~0.3 s); the store keeps them for the
    # process, so a process that composes many experiments (a sweep's checks) stores once.
    if f"{ROOT_SCHEMA}.yaml" not in cs.repo:
        for name, node in GROUP_SCHEMAS.items():
            cs.store(group="schema", name=name, node=node)
        launcher_config.store()
        cs.store(name=ROOT_SCHEMA, node=ExperimentConfig)  # last: its presence means all are
    # econfig.user_llm_base_url defaults to ${tau2train.user_sim_url:<record>}: the URL a
    # running `tau2train-user-sim` recorded.
    OmegaConf.register_new_resolver(USER_SIM_URL_RESOLVER, recorded_url, replace=True)
    # ${tau2train.tau2_data_dir:}: the installed tau2's data, for Slurm jobs and their workers.
    OmegaConf.register_new_resolver(TAU2_DATA_DIR_RESOLVER, tau2_data_dir, replace=True)
    # the Slurm job's GPUs: eval.server.gpus when mode=eval serves a checkpoint, else none
    OmegaConf.register_new_resolver(EVAL_JOB_GPUS_RESOLVER, eval_job_gpus, replace=True)
    # experiment names: "-sft" after the name of a mode=sft run
    OmegaConf.register_new_resolver(STAGE_SUFFIX_RESOLVER, stage_suffix, replace=True)
