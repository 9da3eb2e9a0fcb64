"""Which τ² task set a process plays: econfig.tau2_data_dir, read through tau2's own loaders.

`use(econfig)` points tau2 at the configured data directory (tau2train.compat.tau2.
use_data_dir; None: the installed package's own data) and, when a τ²-bench 1.0 task set
needs it, gives retail's agent 1.0's `get_item_details` read tool (compat.tau2.
offer_item_details): the tool is offered when the data directory's retail tasks name it in
their gold actions (1.0's task 21 does; the package's tasks never do, so 26.3's tool set is
unchanged there). Every process that loads τ² data calls it before it does: the launcher
(tau2train.launch.modes.run_here) and each AReaL rollout worker (the workflow's
constructor, which receives econfig as AReaL ships it). What the process cached from other
data (tasks by split, the offered tools, fast_env's shared DBs) is forgotten on a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tau2train.compat.tau2 import (
    ITEM_DETAILS_TOOL,
    data_dir,
    item_details_offered,
    offer_item_details,
    use_data_dir,
)
from tau2train.schemas import EnvConfig

ITEM_DETAILS_DOMAIN = "retail"


def calls_item_details() -> bool:
    """Whether retail's tasks in the current data directory use 1.0's get_item_details."""
    from tau2.registry import registry

    try:
        tasks = registry.get_tasks_loader(ITEM_DETAILS_DOMAIN)(None)
    except OSError:  # a data directory without retail
        return False
    return any(
        action.name == ITEM_DETAILS_TOOL
        for task in tasks
        for action in ((task.evaluation_criteria and task.evaluation_criteria.actions) or [])
    )


def use(econfig: EnvConfig) -> None:
    """Make this process play econfig's task set (see the module's docs)."""
    changed = use_data_dir(econfig.tau2_data_dir)
    wanted = econfig.tau2_data_dir is not None and calls_item_details()
    if offer_item_details(wanted) or changed:
        forget_loaded_data()


def forget_loaded_data() -> None:
    """Drop what this process cached from the task set it played before."""
    from tau2train.rollout import episode, fast_env, players

    episode.forget_tasks()
    players.forget_tools()
    fast_env.forget()


@dataclass(frozen=True)
class State:
    """Where tau2 reads its data, and whether retail offers get_item_details."""

    data_dir: Path | None
    item_details: bool

    @classmethod
    def now(cls) -> State:
        import sys

        loaded = "tau2.utils.utils" in sys.modules
        return cls(data_dir() if loaded else None, item_details_offered())

    def restore(self) -> None:
        changed = use_data_dir(self.data_dir)
        if offer_item_details(self.item_details) or changed:
            forget_loaded_data()
