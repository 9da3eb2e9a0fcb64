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
from tau2train.config import placement, sbatch
from tau2train.config.errors import ConfigError
from tau2train.config.overrides import load_choice
from tau2train.records.layout import path_safe
from tau2train.records.user_sim import USER_SIM_URL_RESOLVER, recorded_url
from tau2train.schemas import (
    AllocationSpec,
    DataSpec,
    DomainSpec,
    ExperimentConfig,
    ModelSpec,
    RaySpec,
    RewardSpec,
    SlurmSpec,
    TrackingSpec,
    UserSimSpec,
)
from tau2train.schemas.groups import POLICY_SERVERS
from tau2train.schemas.modes import Mode, facts
from tau2train.serving.tiny_qwen import DEFAULT_WIDTH, WIDTHS, tiny_qwen_path

ROOT_SCHEMA = "tau2train_schema"
# The schema each group's YAML choices name in their defaults (`/schema/<group>`).
GROUP_SCHEMAS = {
    "model": ModelSpec,
    "domain": DomainSpec,
    "data": DataSpec,
    "allocation": AllocationSpec,
    "cluster": ClusterSpecConfig,
    "slurm": SlurmSpec,
    "ray": RaySpec,
    "tracking": TrackingSpec,
    "user_sim": UserSimSpec,
    "reward": RewardSpec,
}
STAGE_SUFFIX_RESOLVER = "tau2train.stage_suffix"
RUN_MODEL_RESOLVER = "tau2train.run_model"
WORKER_CMD_RESOLVER = "tau2train.worker_cmd"
TINY_QWEN_RESOLVER = "tau2train.tiny_qwen"
DOMAIN_MAX_STEPS_RESOLVER = "tau2train.domain_max_steps"


def worker_cmd(server: str) -> str:
    """AReaL's worker command for the policy server allocation.server names (an unknown one is
    left to validation's choices check, which names the valid ones)."""
    return f"python3 -m {POLICY_SERVERS.get(server, POLICY_SERVERS['sglang'])}"


def tiny_qwen_build(hidden_size: int = DEFAULT_WIDTH) -> str:
    """${tau2train.tiny_qwen:128}: where the shared tiny-Qwen build of that width lives."""
    if hidden_size not in WIDTHS:
        raise ConfigError("model.path", f"${{{TINY_QWEN_RESOLVER}:{hidden_size}}}",
                          "a tiny Qwen3 is built locally in these widths only (hidden size)",
                          valid=[f"${{{TINY_QWEN_RESOLVER}:{w}}}" for w in WIDTHS],
                          fix=f"model.path='${{{TINY_QWEN_RESOLVER}:{WIDTHS[-1]}}}', or a model folder")
    return str(tiny_qwen_path(int(hidden_size)))


def domain_max_steps(domain: str) -> int:
    """${tau2train.domain_max_steps:telecom}: the step limit of a domain group's own file
    (conf/domain/<domain>.yaml's max_steps), the one table of per-domain step limits: a mixed
    run (data=areal_tau2) gives each domain's episodes the limit its domain group sets."""
    return int(load_choice("domain", domain).max_steps)


def stage_suffix(mode: str) -> str:
    """What the experiment name gets for a stage (tau2train.schemas.modes)."""
    return facts(mode).stage_suffix


def run_model(mode: str, model_name: str, agent_base_url: str | None, agent_model: str) -> str:
    """The model an experiment is named after: the evaluated one (eval.agent_model, in the
    characters AReaL allows in a name) when mode=eval scores an endpoint; otherwise the model
    group's, which is trained, or whose checkpoints mode=eval serves."""
    if mode == Mode.EVAL and agent_base_url:
        return path_safe(agent_model).replace("_", "-")
    return model_name


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
    # cluster=slurm: the scheduler AReaL runs in the job, and what the job asks Slurm for
    OmegaConf.register_new_resolver(placement.AREAL_SCHEDULER_RESOLVER, placement.areal_scheduler, replace=True)
    OmegaConf.register_new_resolver(placement.SLURM_JOB_RESOLVER, placement.slurm_job_field, replace=True)
    OmegaConf.register_new_resolver(sbatch.SBATCH_OPTIONS_RESOLVER, sbatch.sbatch_options_field, replace=True)
    # experiment names: a stage's suffix, "-sft" after the name of a mode=sft run
    OmegaConf.register_new_resolver(STAGE_SUFFIX_RESOLVER, stage_suffix, replace=True)
    # ... and the model they start with: the evaluated one for an endpoint's evaluation
    OmegaConf.register_new_resolver(RUN_MODEL_RESOLVER, run_model, replace=True)
    # the workers' command follows allocation.server; model=tiny_qwen3's weights are built here
    OmegaConf.register_new_resolver(WORKER_CMD_RESOLVER, worker_cmd, replace=True)
    OmegaConf.register_new_resolver(TINY_QWEN_RESOLVER, tiny_qwen_build, replace=True)
    # data=areal_tau2's per-domain step limits are the domain groups' own
    OmegaConf.register_new_resolver(DOMAIN_MAX_STEPS_RESOLVER, domain_max_steps, replace=True)
