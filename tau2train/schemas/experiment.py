"""The root config a user composes: AReaL's PPOConfig + econfig, plus the chosen groups' facts.

Only the `PPOConfig` part is handed to AReaL; the group facts feed validation and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from omegaconf import MISSING

from tau2train.schemas.clusters import CLUSTERS, RaySpec
from tau2train.schemas.declare import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    TEMPERATURE,
    Range,
    setting,
)
from tau2train.schemas.env import PPOConfig
from tau2train.schemas.groups import (
    AllocationSpec,
    DataSpec,
    DomainSpec,
    EvalSpec,
    ModelSpec,
    SFTSpec,
    SlurmSpec,
    TrackingSpec,
    TrainerSpec,
    UserSimSpec,
)
from tau2train.schemas.modes import MODES
from tau2train.schemas.reward import RewardSpec


@dataclass
class ExperimentConfig(PPOConfig):
    """The root config: AReaL's PPOConfig + econfig, plus the chosen groups' facts."""

    mode: str = setting("train", "What to run: train (AReaL's PPO trainer), sft (AReaL's SFT trainer on the "
        "AReaL-tau2-data SFT file, see sft.*), eval (score an endpoint or a checkpoint) or recipe (all of "
        "them in one command on this machine: gold-replay SFT data, sft, train from its checkpoint, eval of "
        "base, SFT and RL, compare; experiment=cpu_miniature).", choices=MODES)
    launcher: str = setting("local", "How the job is launched: in this process (local), submitted to Slurm "
        "through hydra-submitit-launcher (slurm), or in this process as a driver of an existing Ray cluster "
        "(ray). The cluster group sets it.", choices=CLUSTERS)
    dry_run: bool = setting(False, "Compose, validate, write the AReaL config and print the plan; never "
        "starts or submits anything.")
    run_dir: str = setting(MISSING, "Where this run's resolved config and Hydra logs go.")
    model: ModelSpec = setting(help="model group.", factory=ModelSpec)
    domain: DomainSpec = setting(help="domain group.", factory=DomainSpec)
    data: DataSpec = setting(help="data group: where the training rows come from.", factory=DataSpec)
    allocation: AllocationSpec = setting(help="allocation group.", factory=AllocationSpec)
    slurm: SlurmSpec = setting(help="Slurm settings (cluster group).", factory=SlurmSpec)
    ray: RaySpec = setting(help="The Ray cluster to join (cluster=ray).", factory=RaySpec)
    eval: EvalSpec = setting(help="Evaluation settings (mode=eval).", factory=EvalSpec)
    trainer: TrainerSpec = setting(help="Trainer settings (mode=train).", factory=TrainerSpec)
    sft: SFTSpec = setting(help="Supervised fine-tuning settings (mode=sft).", factory=SFTSpec)
    tracking: TrackingSpec = setting(help="Experiment tracking (tracking group).", factory=TrackingSpec)
    user_sim: UserSimSpec = setting(help="The user-simulator server (user_sim group; tau2train-user-sim).",
        factory=UserSimSpec)
    reward: RewardSpec = setting(help="What a training episode earns (reward group): terms and shaping.",
        factory=RewardSpec)


# Keys of ExperimentConfig that are ours, not AReaL's: dropped from the YAML AReaL loads. The
# fields ExperimentConfig adds to PPOConfig (+ econfig & co., which AReaL's workflow receives).
TAU2TRAIN_ONLY_KEYS = tuple(
    f.name for f in fields(ExperimentConfig) if f.name not in {base.name for base in fields(PPOConfig)}
)


# AReaL's default admin key of its rollout proxy (AgentConfig.admin_api_key), which AReaL refuses
# on a non-loopback host; each training run gets a fresh one instead (tau2train.launch.train).
AREAL_DEFAULT_ADMIN_KEY = "areal-admin-key"
# Secrets a config must not carry (it lands in saved configs and job scripts): key -> the one
# value allowed there, and where the secret comes from instead.
SECRETS_SET_ELSEWHERE = {
    "stats_logger.wandb.wandb_api_key": (
        "", "remove it and export WANDB_API_KEY (or run `wandb login`) instead",
    ),
    "rollout.agent.admin_api_key": (
        AREAL_DEFAULT_ADMIN_KEY,
        "remove it: every training run gets a fresh admin key for AReaL's rollout proxy, kept in memory",
    ),
}

# Ranges of the AReaL fields whose meaning has one (AReaL's dataclasses declare `help` and
# `choices` but no ranges): checked with the ranges declared on tau2train's own fields.
INHERITED_RANGES: dict[str, Range] = {
    "total_train_epochs": AT_LEAST_ONE,
    "gconfig.n_samples": AT_LEAST_ONE,
    "gconfig.max_new_tokens": AT_LEAST_ONE,
    "gconfig.max_tokens": AT_LEAST_ONE,
    "gconfig.temperature": TEMPERATURE,
    "gconfig.top_p": Range(0, 1, low_open=True),
    "train_dataset.batch_size": AT_LEAST_ONE,
    "valid_dataset.batch_size": AT_LEAST_ONE,
    "rollout.max_concurrent_rollouts": AT_LEAST_ONE,
    "rollout.max_head_offpolicyness": NON_NEGATIVE,
    "rollout.agent.turn_discount": Range(0, 1),
    "actor.eps_clip": POSITIVE,
    "actor.optimizer.lr": POSITIVE,
    "actor.ppo_n_minibatches": AT_LEAST_ONE,
    "cluster.n_nodes": AT_LEAST_ONE,
    "cluster.n_gpus_per_node": NON_NEGATIVE,
    "sglang.context_length": AT_LEAST_ONE,
}
