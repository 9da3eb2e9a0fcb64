"""Typed schemas for everything tau2train composes: the bottom layer, imported by every other.

The root config a user composes is `ExperimentConfig`: AReaL's own `PPOConfig` (so the
trainer gets exactly what it accepts) plus the τ² environment (`econfig`) and the facts of the
chosen config groups. `RunInfo` is one episode's record. These modules import only the
standard library, OmegaConf's MISSING and AReaL's config dataclasses; Hydra's ConfigStore
registration lives with the configuration layer (tau2train.config.registry).

The names below load with their module on first use (PEP 562): `tau2train.schemas.declare`
imports no AReaL, so the command line's checks that run before AReaL is loaded
(tau2train.config.key_index) can use it without loading the rest.
"""

from importlib import import_module

# exported name -> the module of this package that defines it
_HOME = {
    **dict.fromkeys(("CHOICES", "HELP", "RANGE", "Range"), "declare"),
    **dict.fromkeys(("ALL_TASKS", "GROUP_FILTER_REWARDS", "REWARD_TYPES", "EnvConfig", "GroupFilterConfig",
                     "NLJudge", "NL_JUDGE_API_KEY_ENV", "PPOConfig", "endpoint_model_name"), "env"),
    **dict.fromkeys(
        ("AREAL_DEFAULT_ADMIN_KEY", "INHERITED_RANGES", "SECRETS_SET_ELSEWHERE", "TAU2TRAIN_ONLY_KEYS",
         "ExperimentConfig"),
        "experiment",
    ),
    **dict.fromkeys(
        ("AUTO_PLACEMENT", "DATA_SOURCES", "INFERENCE_BACKENDS", "PLACEMENTS", "TRAINING_BACKENDS",
         "AllocationSpec", "Placement", "DataSpec", "DomainSpec",
         "EvalServerSpec", "EvalSpec", "ModelSpec", "QueueSpec", "ServerSpec", "SFTSpec", "SlurmSpec",
         "TrackingSpec", "TrainerSpec", "UserSimSlurmSpec", "UserSimSpec"),
        "groups",
    ),
    **dict.fromkeys(("MODES", "MODE_FACTS", "Mode", "ModeFacts"), "modes"),
    **dict.fromkeys(("TAU2_TERM", "RewardSpec", "RewardTerm", "tau2_reward"), "reward"),
    "RunInfo": "run_info",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
