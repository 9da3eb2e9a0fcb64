"""The reward a training run gives its episodes (the reward group): terms, each a function
named in config with its weight and arguments, summed into the episode's shaped reward, and
the shaping steps around them (format penalty, turn discount, scaling and bias).

A term is `fn(context, **args) -> float`; `context` is the episode as the rollout side sees
it (tau2train.rollout.reward_terms.RewardContext). Evaluation never reads this: it reports
tau2's own reward, whatever was trained.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from tau2train.schemas.declare import FRACTION, NON_NEGATIVE, POSITIVE, setting

# The shipped terms (tau2train.rollout.reward_terms), by the names the config groups use.
TERMS_MODULE = "tau2train.rollout.reward_terms"
TAU2_TERM = f"{TERMS_MODULE}.tau2"


@dataclass
class RewardTerm:
    """One term of the shaped reward: a function named by its import path, its weight and the
    keyword arguments it is called with besides the episode's context."""

    _target_: str = setting(MISSING, "Import path of the term's function, called as fn(context, **args) -> "
        "float (context: tau2train.rollout.reward_terms.RewardContext), e.g. mypkg.terms.step_cost; its "
        "module must be importable by the training processes (installed, or on PYTHONPATH).")
    weight: float = setting(1.0, "What the term's value is multiplied by before the terms are summed (any "
        "finite number; negative for a cost).")
    args: dict[str, Any] = setting(help="Keyword arguments the function gets besides the context, e.g. "
        "{per_step: 0.01}.", factory=dict)

    def function(self) -> Callable[..., float]:
        """The function `_target_` names (ImportError, AttributeError or ValueError if none)."""
        module, _, name = self._target_.rpartition(".")
        return getattr(importlib.import_module(module), name)


@dataclass
class RewardSpec:
    """What a training episode earns (reward group): the weighted sum of `terms` is the
    episode's shaped reward, added to its last agent completion; each malformed completion
    gets -format_penalty; AReaL then discounts backwards by turn_discount and trains on
    (reward + bias) * scaling."""

    terms: list[RewardTerm] = setting(
        help="The terms the episode's shaped reward sums, each {_target_: <function>, weight: "
        "<number>, args: {...}}: reward=tau2 has tau2's own reward alone "
        f"({TAU2_TERM}); the shipped terms are in {TERMS_MODULE}.", factory=list)
    format_penalty: float = setting(0.1, "Penalty given to each malformed agent completion (unknown tool, "
        "arguments that are not a JSON object or do not fit the tool's schema, an empty message).",
        range=NON_NEGATIVE)
    turn_discount: float = setting(1.0, "Per-turn discount AReaL spreads rewards backwards with (reward[i] += "
        "turn_discount * reward[i+1]; rollout.agent.turn_discount follows it); 1.0 = none.", range=FRACTION)
    scaling: float = setting(10.0, "AReaL trains on (reward + bias) * scaling (actor.reward_scaling follows "
        "it).", range=POSITIVE)
    bias: float = setting(-0.5, "Added to each reward before scaling (actor.reward_bias follows it): -0.5 and "
        "scaling 10 turn a 0/1 reward into -5/+5.")

    def __post_init__(self) -> None:
        # AReaL ships the workflow's reward to its workers as plain data
        self.terms = [RewardTerm(**t) if isinstance(t, dict) else t for t in self.terms]


def tau2_reward() -> RewardSpec:
    """reward=tau2's reward: tau2's own, as every run trained before the reward group existed
    (and what an evaluation's episodes are scored with)."""
    return RewardSpec(terms=[RewardTerm(_target_=TAU2_TERM)])
