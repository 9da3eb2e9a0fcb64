"""What a run changes in the process that runs it, undone on the way out.

`tau2train.run.main` can be called more than once in one process (the tests do, and a
notebook may): each call leaves the process as it found it. A run changes:
- logging's root and manager: AReaL's `getLogger` swaps in its own on every call
  (areal/utils/logging.py), and the entry point points them back at `logging.root`;
- `sys.unraisablehook`, silenced by `quiet_until_exit` after Ctrl-C/SIGTERM: that one stays,
  as the process is ending and the episode threads still unwinding would otherwise print
  "Exception ignored in: <Task pending ...>" after the run's last line (seen in CI);
- tau2's registry and player modules, patched by the rollout side when episodes run here
  (`mode=eval`, checks of released data): fast environments, snapshot aliases, the
  players' `generate`.
(submitit's executor class is swapped for one call and put back by the Slurm launcher
plugin itself; SIGTERM's handler by `launch.local.sigterm_unwinds`.)
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator


def _undo_rollout_patches() -> None:
    """Only what was imported can have been patched: nothing is imported here to undo it."""
    fast_env = sys.modules.get("tau2train.rollout.fast_env")
    if fast_env is not None:
        fast_env.uninstall_all()
    snapshots = sys.modules.get("tau2train.rollout.snapshots")
    if snapshots is not None:
        snapshots.unregister_all()
    players = sys.modules.get("tau2train.rollout.players")
    if players is not None:
        players.unroute_chats()


def _ignore(unraisable) -> None:
    pass


def quiet_until_exit() -> None:
    """A stopped run's process is ending: what its unwinding threads' tasks would report at
    interpreter exit is noise, not news."""
    sys.unraisablehook = _ignore


@contextlib.contextmanager
def left_as_found() -> Iterator[None]:
    root, manager = logging.Logger.root, logging.Logger.manager
    unraisablehook = sys.unraisablehook
    try:
        yield
    finally:
        logging.Logger.root, logging.Logger.manager = root, manager
        if sys.unraisablehook is not _ignore:
            sys.unraisablehook = unraisablehook
        _undo_rollout_patches()
