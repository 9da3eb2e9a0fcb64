"""The reward group's checks: every term's function imports and can be called as
`fn(context, **args)`, every weight is a finite number, and AReaL's own reward keys follow the
reward group's (one source of truth)."""

from __future__ import annotations

import functools
import inspect
import math

from tau2train.config.errors import ConfigError
from tau2train.schemas import ExperimentConfig, RewardTerm
from tau2train.schemas.reward import TERMS_MODULE

# AReaL's keys that follow the reward group (conf/config.yaml interpolates them) -> its key.
FOLLOWERS = {
    "actor.reward_scaling": "reward.scaling",
    "actor.reward_bias": "reward.bias",
    "rollout.agent.turn_discount": "reward.turn_discount",
}
SIGNATURE = "fn(context, **args) -> float"


def check_reward(exp: ExperimentConfig) -> None:
    """Raise a ConfigError for the first term or AReaL key that does not fit (module docs)."""
    if not exp.reward.terms:
        raise ConfigError(
            "reward.terms", [], "no term: every episode would earn 0 and nothing would be learned",
            valid=f"a list of {{_target_: <function>, weight: <number>, args: {{...}}}}, e.g. "
            f"[{{_target_: {TERMS_MODULE}.tau2}}]",
            fix="pick a reward=<choice> (tau2, db_only, partial_actions, format_strict) or list terms",
        )
    for index, term in enumerate(exp.reward.terms):
        check_term(f"reward.terms[{index}]", term)
    check_followers(exp)


def check_term(key: str, term: RewardTerm) -> None:
    """The term's function imports, takes (context, **args), and its weight is finite."""
    try:
        function = term.function()
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"{key}._target_", term._target_, f"cannot be imported ({type(e).__name__}: {e})",
            valid=f"the import path of a function {SIGNATURE}, e.g. {TERMS_MODULE}.partial_actions",
            fix=f"correct {key}._target_ (package.module.function), and put its module where the "
            "training processes import it (installed, or on PYTHONPATH)",
        ) from None
    try:
        inspect.signature(function).bind(object(), **term.args)
    except (TypeError, ValueError) as e:  # ValueError: no signature to read
        raise ConfigError(
            f"{key}._target_", term._target_,
            f"cannot be called as {SIGNATURE} with args {term.args} ({_signature(function)}: {e})",
            valid=f"a function {SIGNATURE}, each of its other parameters given in {key}.args or defaulted",
            fix=f"give the function that signature, or {key}.args the arguments it takes",
        ) from None
    if isinstance(term.weight, bool) or not math.isfinite(term.weight):
        raise ConfigError(f"{key}.weight", term.weight, "not a finite number", valid="any finite number",
                          fix=f"set {key}.weight to a number, e.g. 0.5")


def _signature(function) -> str:
    try:
        return f"{getattr(function, '__name__', function)}{inspect.signature(function)}"
    except (TypeError, ValueError):
        return repr(function)


def check_followers(exp: ExperimentConfig) -> None:
    """AReaL's reward keys hold the reward group's values (set there, not here)."""
    for areal_key, own in FOLLOWERS.items():
        value = functools.reduce(lambda node, name: getattr(node, name, None), areal_key.split("."), exp)
        wanted = functools.reduce(getattr, own.split("."), exp)
        if value is not None and value != wanted:
            raise ConfigError(
                areal_key, value, f"differs from {own}={wanted}: the reward group holds the reward's settings "
                "and AReaL's key follows it",
                valid=f"{wanted} (= {own})", fix=f"set {own}={value} instead of {areal_key}",
            )
