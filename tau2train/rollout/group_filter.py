"""The rollout side's rules for a GRPO group (one AReaL task: `gconfig.n_samples` episodes).

- Which groups train (`GroupFilter`, AReaL's dynamic filter): a group is dropped whole when
  too few of its episodes are left (`dropped_whole`: the others failed outside the policy's
  control and were dropped alone), and when the mean of its episodes' rewards is out of the
  configured bounds.
- What a kept group's rows are measured against (`group_baseline`, group_filter.baseline).

The filter judges a group by its episodes' rewards (one per episode: the shaped one, or tau2's
with group_filter.judge_by=tau2). AReaL hands the filter only the exported per-completion rows
(penalties and turn discount included, one row per completion, nothing marking which rows are
one episode's), so the workflow records each episode's rewards (`record_episode_reward`) under
AReaL's task id, which AReaL's workflow context holds both while the group's episodes run and
when it calls the filter (areal/infra/workflow_executor.py:1045,1099). What the dropped
episodes and groups cost is counted by tau2train.rollout.lost_episodes, with the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from tau2train.compat.areal import rollout_task_id
from tau2train.rollout.group_table import GroupTable
from tau2train.schemas import GroupFilterConfig


def dropped_whole(episodes_left: int, min_episodes: int) -> bool:
    """Whether a group some of whose episodes failed (each dropped alone) is dropped whole:
    fewer than `min_episodes` (group_filter.min_episodes, at most the group's size) are left."""
    return episodes_left < min_episodes


class EpisodeReward(NamedTuple):
    """One episode's rewards as the group filter may judge it (group_filter.judge_by)."""

    shaped: float
    tau2: float


# this process's episode rewards by AReaL task id: the workflow adds, the filter pops
EPISODE_REWARDS: GroupTable[EpisodeReward] = GroupTable()


def record_episode_reward(shaped: float, tau2: float | None = None) -> None:
    """Note an episode's shaped reward and tau2's (the same when not given) for its group's
    filter (no-op outside an AReaL rollout)."""
    reward = EpisodeReward(float(shaped), float(shaped if tau2 is None else tau2))
    EPISODE_REWARDS.add(rollout_task_id(), reward)


@dataclass
class GroupFilter(GroupFilterConfig):
    """AReaL's dynamic filter, the one place AReaL hands over a task's whole group of rollouts
    (rows: one per completion): keep the group only if at least `min_episodes` of its episodes
    are left (the others failed and were dropped alone: `dropped_whole`) and the mean of their
    rewards is within the configured bounds (a solved group teaches little; upstream drops
    > 0.95), judged by the episodes' shaped rewards or tau2's (`judge_by`); `min_episodes` is
    group_filter.min_episodes, at most the group's size. With `baseline="group"` a kept
    group's rows are measured against the mean of its episodes' shaped rewards, the rows' own
    (group_baseline). Without recorded episode rewards (called outside AReaL's rollout) the
    mean is that of the group's "rewards". A top-level class, so AReaL can ship it to its
    rollout workers by pickling."""

    def __call__(self, group: dict[str, Any]) -> bool:
        episodes = EPISODE_REWARDS.pop(rollout_task_id())
        if episodes and dropped_whole(len(episodes), self.min_episodes):
            return False
        shaped = _mean([e.shaped for e in episodes]) if episodes else _rows_mean(group["rewards"])
        judged = _mean([getattr(e, self.judge_by) for e in episodes]) if episodes else shaped
        if self.max_mean_reward is not None and judged > self.max_mean_reward:
            return False
        if self.min_mean_reward is not None and judged < self.min_mean_reward:
            return False
        if self.baseline == "group":
            group_baseline(group, shaped)
        return True


def group_baseline(group: dict[str, Any], mean: float) -> None:
    """GRPO's baseline over whole episodes: every row's reward (a completion's) minus `mean`,
    the mean reward of the group's episodes. An episode's completions share its outcome, so
    the tokens all episodes of a group have in common get no net push; only those that tell
    its wins from its losses do. AReaL's reward_bias, reward_scaling and actor.adv_norm
    apply afterwards, as to any reward."""
    rewards = group["rewards"]
    group["rewards"] = rewards - mean if hasattr(rewards, "float") else [r - mean for r in rewards]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _rows_mean(rewards) -> float:
    if hasattr(rewards, "float"):  # a torch tensor, as AReaL passes it
        return float(rewards.float().mean())
    return sum(rewards) / len(rewards)
