"""What a run may change in its process and must leave as found (tau2train.launch.process_state):
one snapshot, compared before and after an in-process `main` and around importing every
tau2train module (tests/test_layout.py)."""

from __future__ import annotations

import logging
import signal
import sys


def snapshot() -> dict[str, object]:
    """The patch points, by name; values compare by identity (or as plain dicts)."""
    import submitit
    from tau2.agent import llm_agent
    from tau2.domains.retail import environment as retail
    from tau2.evaluator import evaluator_nl_assertions
    from tau2.registry import registry
    from tau2.user import user_simulator
    from tau2.utils import utils as tau2_utils

    return {
        "logging.Logger.root": logging.Logger.root,
        "logging.Logger.manager": logging.Logger.manager,
        "sys.unraisablehook": sys.unraisablehook,
        "sys.argv": list(sys.argv),
        "SIGTERM handler": signal.getsignal(signal.SIGTERM),
        "SIGINT handler": signal.getsignal(signal.SIGINT),
        "tau2 registry domains": dict(registry._domains),
        "tau2.agent.llm_agent.generate": llm_agent.generate,
        "tau2.user.user_simulator.generate": user_simulator.generate,
        "tau2.evaluator.evaluator_nl_assertions.generate": evaluator_nl_assertions.generate,
        "tau2.utils.utils.DATA_DIR": tau2_utils.DATA_DIR,
        "tau2.user.user_simulator.GLOBAL_USER_SIM_GUIDELINES_PATH": user_simulator.GLOBAL_USER_SIM_GUIDELINES_PATH,
        "tau2.domains.retail.environment.RetailTools": retail.RetailTools,
        "submitit.AutoExecutor": submitit.AutoExecutor,
    }


def changed(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """The names whose value differs, each with both values."""
    return [f"{key}: {before[key]!r} -> {after[key]!r}" for key in before if before[key] != after[key]]
