"""How an episode's outcome becomes the rewards AReaL trains on.

Rule: every agent completion starts at 0; a malformed one (unknown tool, arguments that are
not a JSON object or do not fit the tool's schema, a tool call the server's parser dropped, an
empty message with no tool call) gets
`-invalid_format_penalty`; the episode reward from tau2's evaluator is added to the last
completion. AReaL then spreads rewards backwards with `rollout.agent.turn_discount`
(reward[i] += turn_discount * reward[i+1]) when it exports the interactions.

The group filter judges a group by its episodes' rewards (tau2's, one per episode). AReaL hands
the filter only the exported per-completion rows (penalties and turn discount included, one
row per completion, nothing marking which rows are one episode's), so the workflow records each
episode's reward under AReaL's task id, which AReaL's workflow context holds both while the
group's episodes run and when it calls the filter (areal/infra/workflow_executor.py:1045,1099).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tau2.data_model.tasks import RewardType, Task

from tau2train.compat.areal import rollout_task_id, stats_scope
from tau2train.rollout.chat import Completion
from tau2train.schemas import GroupFilterConfig


def completion_rewards(
    completions: list[Completion], episode_reward: float, invalid_format_penalty: float
) -> dict[str, float]:
    """Reward per completion id, in the order the completions were made."""
    rewards = {
        c.id: -float(invalid_format_penalty) if c.problem else 0.0 for c in completions
    }
    if completions:
        rewards[completions[-1].id] += float(episode_reward)
    return rewards


def with_reward_basis(task: Task, basis: list[str] | None) -> Task:
    """`task` scored on `basis` only (None: the task's own basis, unchanged)."""
    if basis is None or task.evaluation_criteria is None:
        return task
    criteria = task.evaluation_criteria.model_copy(
        update={"reward_basis": [RewardType(b) for b in basis]}
    )
    return task.model_copy(update={"evaluation_criteria": criteria})


def evaluation_type(task: Task):
    """tau2's evaluation of `task` as τ²-bench 1.0 runs it (its EvaluationType.ALL): every
    check in the task's basis, the LLM judge's too when NL_ASSERTION is in it (26.3's ALL
    refuses such a task; its ALL_WITH_NL_ASSERTIONS is 1.0's ALL for it)."""
    from tau2.evaluator.evaluator import EvaluationType

    criteria = task.evaluation_criteria
    if criteria is not None and RewardType.NL_ASSERTION in (criteria.reward_basis or []):
        return EvaluationType.ALL_WITH_NL_ASSERTIONS
    return EvaluationType.ALL


class EpisodeRewards:
    """Episode rewards by AReaL task id, for the group filter of the same rollout worker.

    Thread-safe; holds at most `capacity` tasks (a group that AReaL drops before its filter
    runs, one all of whose episodes failed, leaves its entry behind until it is pushed out)."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._by_task: OrderedDict[int, list[float]] = OrderedDict()

    def add(self, task_id: int | None, reward: float) -> None:
        if task_id is None:
            return
        with self._lock:
            self._by_task.setdefault(task_id, []).append(float(reward))
            while len(self._by_task) > self.capacity:
                self._by_task.popitem(last=False)

    def pop(self, task_id: int | None) -> list[float]:
        if task_id is None:
            return []
        with self._lock:
            return self._by_task.pop(task_id, [])


# this process's table: the workflow adds, the filter pops
EPISODE_REWARDS = EpisodeRewards()


def record_episode_reward(reward: float) -> None:
    """Note an episode's reward for its group's filter (no-op outside an AReaL rollout)."""
    EPISODE_REWARDS.add(rollout_task_id(), reward)


def record_domain_stats(domain: str, reward: float) -> None:
    """An episode's reward and success under its domain on AReaL's stats tracker, in the scope
    AReaL's own `reward` goes to (`rollout/` while training, `eval-rollout/` for validation):
    averaged over a step's episodes, `eval-rollout/<domain>/pass^1` is the validation pass^1 of
    that domain, and wandb draws one curve per domain. No-op outside an AReaL rollout."""
    from tau2.metrics.agent_metrics import is_successful

    scope = stats_scope()
    if scope is None:
        return
    scope.scalar(**{f"{domain}/reward": float(reward), f"{domain}/pass^1": float(is_successful(reward))})


@dataclass
class GroupFilter(GroupFilterConfig):
    """AReaL's dynamic filter, the one place AReaL hands over a task's whole group of rollouts
    (rows: one per completion): keep the group only if at least `min_episodes` of its episodes
    are left (the others failed and were dropped alone) and the mean of their rewards is within
    the configured bounds (a solved group teaches little; upstream drops > 0.95);
    `min_episodes` is the group_filter's least_kept. With `baseline="group"` a kept group's
    rows are measured against that mean (group_baseline). Without recorded episode rewards
    (called outside AReaL's rollout) the mean is that of the group's "rewards". A top-level
    class, so AReaL can ship it to its rollout workers by pickling."""

    def __call__(self, group: dict[str, Any]) -> bool:
        episodes = EPISODE_REWARDS.pop(rollout_task_id())
        if episodes and len(episodes) < self.min_episodes:  # the others failed (losses.py)
            return False
        mean = sum(episodes) / len(episodes) if episodes else _rows_mean(group["rewards"])
        if self.max_mean_reward is not None and mean > self.max_mean_reward:
            return False
        if self.min_mean_reward is not None and mean < self.min_mean_reward:
            return False
        if self.baseline == "group":
            group_baseline(group, mean)
        return True


def group_baseline(group: dict[str, Any], mean: float) -> None:
    """GRPO's baseline over whole episodes: every row's reward (a completion's) minus `mean`,
    the mean reward of the group's episodes. An episode's completions share its outcome, so
    the tokens all episodes of a group have in common get no net push; only those that tell
    its wins from its losses do. AReaL's reward_bias, reward_scaling and actor.adv_norm
    apply afterwards, as to any reward."""
    rewards = group["rewards"]
    group["rewards"] = rewards - mean if hasattr(rewards, "float") else [r - mean for r in rewards]


def _rows_mean(rewards) -> float:
    if hasattr(rewards, "float"):  # a torch tensor, as AReaL passes it
        return float(rewards.float().mean())
    return sum(rewards) / len(rewards)
