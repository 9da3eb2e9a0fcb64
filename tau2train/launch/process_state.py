"""What a run changes in the process that runs it, undone on the way out.

`tau2train.run.main` can be called more than once in one process (the tests do, and a
notebook may): each call leaves the process as it found it. A run changes:
- logging's root and manager: AReaL's `getLogger` swaps in its own on every call
  (areal/utils/logging.py), and the entry point points them back at `logging.root`;
- `sys.unraisablehook`, silenced by `quiet_until_exit` after Ctrl-C/SIGTERM: the process is
  ending, and the episode threads still unwinding would otherwise print "Exception ignored
  in: <Task pending ...>" after the run's last line (seen in CI); then nothing is undone;
- tau2's registry and player modules, patched by the rollout side when episodes run here
  (`mode=eval`, checks of released data): fast environments, snapshot aliases, the
  players' and the NL judge's `generate`, the data directory tau2 reads and retail's tools
  (tau2train.rollout.tau2_data_dir).
(submitit's executor class is swapped for one call and put back by the Slurm launcher
plugin itself; SIGTERM's handler by `launch.clusters.local.sigterm_unwinds`.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator

ROLLOUT_PATCHERS = ("fast_env", "snapshots", "players", "judge", "tau2_data_dir")


def _rollout_modules() -> tuple:
    """The rollout modules that patch tau2, None for those not imported (they patched nothing)."""
    return tuple(sys.modules.get(f"tau2train.rollout.{name}") for name in ROLLOUT_PATCHERS)


@dataclasses.dataclass(frozen=True)
class _RolloutPatches:
    """What the rollout side had patched in tau2."""

    fast: frozenset[str] = frozenset()
    snapshots: frozenset[str] = frozenset()
    chats_routed: bool = False
    judge_routed: bool = False
    task_set: object = None  # tau2train.rollout.tau2_data_dir.State: the data directory, the tools

    @classmethod
    def now(cls) -> _RolloutPatches:
        fast_env, snapshots, players, judge, data_dir = _rollout_modules()
        return cls(
            fast_env.installed() if fast_env else frozenset(),
            snapshots.registered() if snapshots else frozenset(),
            players.chats_routed() if players else False,
            judge.judge_routed() if judge else False,
            data_dir.State.now() if data_dir else None,
        )

    def restore(self) -> None:
        """Undo what was patched since `self` was taken, and nothing from before (a module that
        patched something is imported)."""
        fast_env, snapshots, players, judge, data_dir = _rollout_modules()
        if data_dir and self.task_set != data_dir.State.now():  # before the fast DBs: theirs
            (self.task_set or data_dir.State(None, False)).restore()
        now = _RolloutPatches.now()
        for domain in now.fast - self.fast:
            fast_env.uninstall(domain)
        for domain in self.fast - now.fast:  # put aside by a change of data directory
            fast_env.install(domain, family=snapshots.base_domain(domain) if snapshots else None)
        if now.snapshots - self.snapshots:
            snapshots.unregister(now.snapshots - self.snapshots)
        if now.chats_routed and not self.chats_routed:
            players.unroute_chats()
        if now.judge_routed and not self.judge_routed:
            judge.unroute_judge()


def _ignore(unraisable) -> None:
    pass


def quiet_until_exit() -> None:
    """A stopped run's process is ending: what its unwinding threads' tasks would report at
    interpreter exit is noise, not news. Nothing is undone then (`left_as_found`)."""
    sys.unraisablehook = _ignore


@contextlib.contextmanager
def left_as_found() -> Iterator[None]:
    root, manager = logging.Logger.root, logging.Logger.manager
    unraisablehook = sys.unraisablehook
    rollout_patches = _RolloutPatches.now()
    try:
        yield
    finally:
        # After Ctrl-C/SIGTERM the episode threads are still unwinding through the patched
        # players (unpatched, tau2 would hand a Chat to litellm): the process is ending, and
        # what it changed ends with it.
        if sys.unraisablehook is not _ignore:
            logging.Logger.root, logging.Logger.manager = root, manager
            sys.unraisablehook = unraisablehook
            rollout_patches.restore()
