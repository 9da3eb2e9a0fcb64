"""One experiment as validation found it: the composed config and everything the checks
resolved on the way (the GPU layout, the data file's rows, the served checkpoint's step, the
user simulators' URLs). Immutable, made once by tau2train.config.validate.validate; the plan,
the local run, the Slurm job and the evaluation read it, and none looks again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau2train.config import areal_sft, areal_tau2
from tau2train.config.compose import Composed
from tau2train.config.gpu_layout import Layout
from tau2train.config.servers import ServedCheckpoint
from tau2train.schemas import ExperimentConfig

# What each endpoint is to the run, as messages name it.
AGENT, USER_SIM, JUDGE = "agent endpoint", "user simulator", "NL-assertion judge"


@dataclass(frozen=True, order=True)
class Endpoint:
    """A server the run's episodes talk to: the config key that names it, its URL, the model
    name its requests send (litellm's openai/ prefix dropped) and the key that sets that name,
    and what it is to the run (AGENT, USER_SIM, JUDGE)."""

    key: str
    url: str | None
    model: str = ""
    model_key: str = ""
    role: str = ""


@dataclass(frozen=True)
class Checked:
    composed: Composed
    layout: Layout | None = None  # the allocation parsed (None: mode=eval runs no layout)
    rl_data: areal_tau2.RlFile | None = None  # data=areal_tau2's RL rows (mode=train)
    sft_data: areal_sft.SftFile | None = None  # the SFT file's examples (mode=sft)
    domains: tuple[str, ...] = ()  # the τ² domains the run's episodes play
    served: ServedCheckpoint | None = None  # mode=eval's checkpoint, its step resolved
    scored: Endpoint | None = None  # mode=eval's endpoint, when no checkpoint is served
    user_sims: tuple[Endpoint, ...] = ()
    judges: tuple[Endpoint, ...] = ()  # the NL-assertion judge (econfig.nl_judge), when set

    @property
    def config(self) -> ExperimentConfig:
        return self.composed.config

    @property
    def choices(self) -> dict[str, str]:
        return self.composed.choices

    @property
    def launcher(self) -> dict[str, Any]:
        return self.composed.launcher

    @property
    def overrides(self) -> tuple[str, ...]:
        return self.composed.overrides
