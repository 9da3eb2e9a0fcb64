"""How an episode's outcome becomes the rewards AReaL trains on.

Rule: every agent completion starts at 0; a malformed one (unknown tool, arguments that are
not a JSON object or do not fit the tool's schema, an empty message with no tool call) gets
`-invalid_format_penalty`; the episode reward from tau2's evaluator is added to the last
completion. AReaL then spreads rewards backwards with `rollout.agent.turn_discount`
(reward[i] += turn_discount * reward[i+1]) when it exports the interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau2.data_model.tasks import RewardType, Task

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


@dataclass
class GroupFilter(GroupFilterConfig):
    """AReaL's dynamic filter: keep a group of rollouts of one task only if its mean reward
    is within the configured bounds (a solved group teaches little; upstream drops > 0.95).
    A top-level class, so AReaL can ship it to its rollout workers by pickling."""

    def __call__(self, group: dict[str, Any]) -> bool:
        rewards = group["rewards"]
        if hasattr(rewards, "float"):  # a torch tensor, as AReaL passes it
            mean = float(rewards.float().mean())
        else:
            mean = sum(rewards) / len(rewards)
        if self.max_mean_reward is not None and mean > self.max_mean_reward:
            return False
        return self.min_mean_reward is None or mean >= self.min_mean_reward
