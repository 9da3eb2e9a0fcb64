"""tau2train.rollout.group_filter: the one rule by which a group some of whose episodes failed
is dropped whole, which the group filter applies and rollout.lost_episodes counts."""

from __future__ import annotations

import pytest

from tau2train.rollout.group_filter import dropped_whole


def test_a_group_is_dropped_whole_when_fewer_than_min_episodes_are_left():
    assert dropped_whole(1, 2) and not dropped_whole(2, 2) and not dropped_whole(1, 1)
    assert dropped_whole(7, 8)  # min_episodes = the group's size: any failure drops the group


@pytest.mark.parametrize("failed", range(4))
def test_the_filter_drops_exactly_the_groups_lost_episodes_counts_as_dropped_whole(failed):
    """A group of 4 with min_episodes=2 and `failed` episodes failed: the filter sees the rest's
    rewards, the count sees every episode's end; both name the same groups dropped. (All 4
    failed: AReaL drops the group itself, and calls no filter.)"""
    from areal.infra import workflow_context
    from areal.utils import stats_tracker

    from tau2train.records.episode_failure import Failure
    from tau2train.rollout.group_filter import GroupFilter, record_episode_reward
    from tau2train.rollout.lost_episodes import GROUPS_DROPPED_KEY, record_episode_end

    task_id = 900 + failed
    previous = workflow_context.get()
    try:
        workflow_context.set(workflow_context.WorkflowContext(is_eval=False, task_id=task_id))
        scope = stats_tracker.get(workflow_context.stat_scope())
        scope.export()  # what other tests left recorded
        for episode in range(4):
            record_episode_end(Failure.USER_SIM if episode < failed else None, group_size=4, min_episodes=2)
            if episode >= failed:
                record_episode_reward(0.5)
        counted = scope.export()[f"{workflow_context.stat_scope()}/{GROUPS_DROPPED_KEY}"]
        kept = GroupFilter(max_mean_reward=None, min_episodes=2)({"rewards": [0.5]})
    finally:
        workflow_context.set(previous)
    assert counted == float(not kept) == float(failed > 0 and dropped_whole(4 - failed, 2))
