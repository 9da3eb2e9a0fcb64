"""What each `mode=` is, as the layers below the launch layer must know it before anything runs:
the roles that get GPUs from the allocation, and the stage suffix of its experiment name. What
a mode does (its checks, plan and run) is its entry in tau2train.launch.modes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    TRAIN = "train"
    SFT = "sft"
    EVAL = "eval"
    # the stages above in one command: gold-replay SFT data, sft, train, eval, compare
    RECIPE = "recipe"


@dataclass(frozen=True)
class ModeFacts:
    # the allocation's roles the mode runs on GPUs (none: no layout of its own, as mode=eval,
    # whose checkpoint server asks for eval.server's GPUs)
    gpu_roles: tuple[str, ...]
    # after the experiment name, so that SFT and the RL run after it keep apart their
    # checkpoints and recover state
    stage_suffix: str = ""


MODE_FACTS = {
    Mode.TRAIN: ModeFacts(gpu_roles=("rollout", "actor")),
    Mode.SFT: ModeFacts(gpu_roles=("actor",), stage_suffix="-sft"),
    Mode.EVAL: ModeFacts(gpu_roles=()),
    Mode.RECIPE: ModeFacts(gpu_roles=("rollout", "actor")),
}
MODES = [m.value for m in Mode]


def facts(mode: str) -> ModeFacts:
    """The facts of `mode` (a value outside MODES reads as train: validation refuses it by name)."""
    return MODE_FACTS[Mode(mode) if mode in MODES else Mode.TRAIN]
