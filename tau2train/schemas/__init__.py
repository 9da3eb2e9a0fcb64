"""Typed schemas for everything tau2train composes: the bottom layer, imported by every other.

The root config a user composes is `ExperimentConfig`: AReaL's own `PPOConfig` (so the
trainer gets exactly what it accepts) plus the τ² environment (`econfig`) and the facts of
the chosen config groups. `RunInfo` is one episode's record. These modules import only the
standard library, OmegaConf's MISSING and AReaL's config dataclasses; Hydra's ConfigStore
registration lives with the configuration layer (tau2train.config.registry).
"""

from tau2train.schemas.declare import CHOICES, HELP, RANGE, Range
from tau2train.schemas.env import (
    ALL_TASKS,
    REWARD_TYPES,
    EnvConfig,
    GroupFilterConfig,
    PPOConfig,
)
from tau2train.schemas.experiment import (
    AREAL_DEFAULT_ADMIN_KEY,
    INHERITED_RANGES,
    SECRETS_SET_ELSEWHERE,
    TAU2TRAIN_ONLY_KEYS,
    ExperimentConfig,
)
from tau2train.schemas.groups import (
    DATA_SOURCES,
    INFERENCE_BACKENDS,
    TRAINING_BACKENDS,
    AllocationSpec,
    DataSpec,
    DomainSpec,
    EvalServerSpec,
    EvalSpec,
    ModelSpec,
    QueueSpec,
    ServerSpec,
    SFTSpec,
    SlurmSpec,
    TrackingSpec,
    TrainerSpec,
    UserSimSlurmSpec,
    UserSimSpec,
)
from tau2train.schemas.run_info import RunInfo

__all__ = [
    "ALL_TASKS", "AREAL_DEFAULT_ADMIN_KEY", "CHOICES", "DATA_SOURCES", "HELP", "INFERENCE_BACKENDS",
    "INHERITED_RANGES", "RANGE", "REWARD_TYPES", "SECRETS_SET_ELSEWHERE", "TAU2TRAIN_ONLY_KEYS", "TRAINING_BACKENDS",
    "AllocationSpec", "DataSpec", "DomainSpec", "EnvConfig", "EvalServerSpec", "EvalSpec", "ExperimentConfig",
    "GroupFilterConfig", "ModelSpec", "PPOConfig", "QueueSpec", "Range", "RunInfo", "ServerSpec", "SFTSpec", "SlurmSpec",
    "TrackingSpec", "TrainerSpec",
    "UserSimSlurmSpec", "UserSimSpec",
]
