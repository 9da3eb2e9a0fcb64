"""What training lost to failures outside the policy, step by step on AReaL's stats tracker
(and so in wandb), in the scope AReaL's own `reward` goes to (`rollout/` while training):

- `tau2/episodes_failed/<cause>`: how many of the step's episodes ended on that cause
  (user_sim, timeout, evaluator; tau2train.records.episode_failure);
- `tau2/groups_dropped_whole`: how many GRPO groups were dropped because too few of their
  episodes were left (fewer than group_filter.min_episodes: tau2train.rollout.group_filter's
  dropped_whole, the rule the group filter drops them by); a failed episode is otherwise
  dropped alone and its group trains on the rest (tau2train.compat.areal.drop_episodes_alone:
  AReaL 1.0.4 by itself drops the whole group of an episode that raised);
- `tau2/episodes_lost`: the share of the step's episodes lost: the failed ones, and the rest
  of the groups dropped whole.

Each episode (group) records 0 or 1; AReaL's rollout controller averages what its workers
recorded, and the trainer (tau2train.launch.trainer) has the keys in COUNTED summed instead
(tau2train.compat.areal.report_sums), so those two are counts. The episodes' own records
(RunInfo.failure) hold the same causes, which the sweep report totals.

What a failure costs: with groups of G episodes each failing with probability p, dropping
whole groups (AReaL's own behaviour, min_episodes = G) trains on a share (1 - p)^G of the
episodes: for G = 8, 85% at p = 2% and 43% at p = 10%. Dropping episodes alone (the default
min_episodes = 2) keeps 98.0% and 90.0%: a group is lost only when 7 or 8 of its 8 episodes
fail (p = 10%: 7 in 10 million groups).
"""

from __future__ import annotations

from tau2train.compat.areal import rollout_task_id, stats_scope
from tau2train.records.episode_failure import Failure
from tau2train.rollout.group_filter import dropped_whole
from tau2train.rollout.group_table import GroupTable

FAILED_KEY = "tau2/episodes_failed/{}"
GROUPS_DROPPED_KEY = "tau2/groups_dropped_whole"
EPISODES_LOST_KEY = "tau2/episodes_lost"
# the keys reported as counts per step (sums of the 0/1 recorded), not shares
COUNTED = (FAILED_KEY.format(""), GROUPS_DROPPED_KEY)


# whether each of a group's ended episodes failed, by AReaL task id, until the group's last
GROUPS: GroupTable[bool] = GroupTable()


def record_episode_end(failure: Failure | None, group_size: int, min_episodes: int) -> None:
    """One episode's end on the step's stats; its group's, when it was the group's last (the
    group is dropped whole when fewer than `min_episodes` of its episodes are left). No-op
    outside an AReaL rollout; validation episodes (no task id) count no groups."""
    scope = stats_scope()
    if scope is None:
        return
    scope.scalar(**{FAILED_KEY.format(cause.value): float(failure is cause) for cause in Failure})
    task_id = rollout_task_id()
    if task_id is None:
        return
    ended = GROUPS.add(task_id, failure is not None, complete_at=group_size)
    if ended is None:
        return
    failures = sum(ended)
    dropped = failures > 0 and dropped_whole(group_size - failures, min_episodes)
    lost = group_size if dropped else failures
    scope.scalar(**{GROUPS_DROPPED_KEY: float(dropped)})
    for episode in range(group_size):
        scope.scalar(**{EPISODES_LOST_KEY: float(episode < lost)})
