"""AReaL internals tau2train relies on (areal 1.0.4); guarded by tests/test_compat.py.

Nothing here imports AReaL: the rollout side reads AReaL's workflow context only where AReaL
has loaded it (inside its rollout workers), and the entry point undoes what AReaL's modules
did to logging once they are loaded.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

WORKFLOW_CONTEXT = "areal.infra.workflow_context"
STATS_TRACKER = "areal.utils.stats_tracker"


def restore_stdlib_logging() -> None:
    """AReaL's `getLogger` (areal/utils/logging.py) swaps logging's root and manager for its
    own, so loggers created later (Hydra's) hang off a root `logging.config` never configures.
    Point them back at `logging.root`."""
    logging.Logger.root = logging.root
    logging.Logger.manager = logging.Manager(logging.root)


def rollout_task_id() -> int | None:
    """The id of the AReaL rollout task running in this context: None outside AReaL (the
    module not loaded) and for evaluation tasks (`is_eval`), which no filter judges."""
    context = sys.modules.get(WORKFLOW_CONTEXT)
    if context is None:
        return None
    current = context.get()
    return None if current.is_eval else current.task_id


def stats_scope() -> Any | None:
    """AReaL's stats tracker in the scope of the running rollout (`rollout/` while training,
    `eval-rollout/` for validation); None outside AReaL."""
    context = sys.modules.get(WORKFLOW_CONTEXT)
    tracker = sys.modules.get(STATS_TRACKER)
    if context is None or tracker is None:
        return None
    return tracker.get(context.stat_scope())
