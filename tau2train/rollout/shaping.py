"""The shaped reward of an episode: the reward group's terms (reward.terms), each imported once
per process, called on the episode and weighted, summed. The other shaping steps are the
format penalty per malformed completion (rewards.completion_rewards) and AReaL's own turn
discount, scaling and bias."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tau2train.rollout.reward_terms import RewardContext
from tau2train.schemas import RewardSpec, tau2_reward


class RewardTermFailed(RuntimeError):
    """A term raised, or returned something that is not a finite number."""


@dataclass(frozen=True)
class Term:
    """One reward term, its function imported."""

    target: str
    function: Callable[..., float]
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)

    def value(self, context: RewardContext) -> float:
        try:
            value = self.function(context, **self.args)
        except Exception as e:
            raise RewardTermFailed(f"reward term {self.target} raised {type(e).__name__}: {e}") from e
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise RewardTermFailed(f"reward term {self.target} returned {value!r}, not a finite number")
        return float(value)


@dataclass(frozen=True)
class Shaped:
    """An episode's shaped reward and what each term gave."""

    reward: float
    terms: list[dict[str, Any]]


@dataclass(frozen=True)
class Shaping:
    """A reward spec ready to score episodes: its terms imported, its format penalty."""

    terms: tuple[Term, ...]
    format_penalty: float

    @classmethod
    def of(cls, spec: RewardSpec | dict | None = None) -> Shaping:
        """`spec` (a RewardSpec or its dict form, as AReaL ships it to workers; None: reward=tau2)."""
        if spec is None:
            spec = tau2_reward()
        elif isinstance(spec, dict):
            spec = RewardSpec(**spec)
        terms = tuple(Term(t._target_, t.function(), float(t.weight), dict(t.args or {})) for t in spec.terms)
        return cls(terms, float(spec.format_penalty))

    def episode(self, context: RewardContext) -> Shaped:
        """The weighted sum of the terms on `context`, and each term's value."""
        values = [term.value(context) for term in self.terms]
        parts = [{"term": t.target, "weight": t.weight, "value": v} for t, v in zip(self.terms, values)]
        return Shaped(sum(t.weight * v for t, v in zip(self.terms, values)), parts)

