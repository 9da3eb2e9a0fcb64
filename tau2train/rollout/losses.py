"""What training lost to failures outside the policy, step by step on AReaL's stats tracker
(and so in wandb), in the scope AReaL's own `reward` goes to (`rollout/` while training):

- `tau2/episodes_failed/<cause>`: how many of the step's episodes ended on that cause
  (user_sim, timeout, evaluator; tau2train.records.episode_failure);
- `tau2/groups_dropped_whole`: how many GRPO groups AReaL dropped because one of their
  episodes failed: AReaL 1.0.4 gathers a group's episodes without `return_exceptions`
  (areal/infra/remote_inf_engine.py:89) and its proxy workflow re-raises the failure
  (areal/experimental/openai/proxy/workflow.py:227-234), so the whole group goes;
- `tau2/episodes_lost`: the share of the step's episodes lost with those groups.

Each episode (group) records 0 or 1; AReaL's rollout controller averages what its workers
recorded, and the trainer (tau2train.launch.trainer) has the keys in COUNTED summed instead
(tau2train.compat.areal.report_sums), so those two are counts. The episodes' own records
(RunInfo.failure) hold the same causes, which the sweep report totals.

What dropping whole groups costs: with groups of G episodes each failing with probability p,
a share (1 - p)^G of the episodes is trained on; for G = 8, 85% at p = 2% and 43% at p = 10%
(an episode dropped alone would keep 98% and 90%).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tau2train.compat.areal import rollout_task_id, stats_scope
from tau2train.records.episode_failure import Failure

FAILED_KEY = "tau2/episodes_failed/{}"
GROUPS_DROPPED_KEY = "tau2/groups_dropped_whole"
EPISODES_LOST_KEY = "tau2/episodes_lost"
# the keys reported as counts per step (sums of the 0/1 recorded), not shares
COUNTED = (FAILED_KEY.format(""), GROUPS_DROPPED_KEY)


class GroupTally:
    """Episodes ended, and whether one failed, per AReaL task id (one group). Thread-safe;
    holds at most `capacity` groups."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, tuple[int, bool]] = OrderedDict()

    def ended(self, task_id: int, failed: bool, group_size: int) -> bool | None:
        """Note one episode's end; None until the group's last, then whether it was dropped."""
        with self._lock:
            count, any_failed = self._groups.get(task_id, (0, False))
            count, any_failed = count + 1, any_failed or failed
            if count >= group_size:
                self._groups.pop(task_id, None)
                return any_failed
            self._groups[task_id] = (count, any_failed)
            while len(self._groups) > self.capacity:
                self._groups.popitem(last=False)
            return None


GROUPS = GroupTally()


def record_episode_end(failure: Failure | None, group_size: int) -> None:
    """One episode's end on the step's stats; its group's, when it was the group's last.
    No-op outside an AReaL rollout; validation episodes (no task id) count no groups."""
    scope = stats_scope()
    if scope is None:
        return
    scope.scalar(**{FAILED_KEY.format(cause.value): float(failure is cause) for cause in Failure})
    task_id = rollout_task_id()
    if task_id is None:
        return
    dropped = GROUPS.ended(task_id, failure is not None, group_size)
    if dropped is not None:
        scope.scalar(**{GROUPS_DROPPED_KEY: float(dropped)})
        for _ in range(group_size):
            scope.scalar(**{EPISODES_LOST_KEY: float(dropped)})
