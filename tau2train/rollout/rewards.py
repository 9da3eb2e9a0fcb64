"""How an episode's outcome becomes the rewards AReaL trains on.

Rule: every agent completion starts at 0; a malformed one (unknown tool, arguments that are
not a JSON object or do not fit the tool's schema, a tool call the server's parser dropped, an
empty message with no tool call) gets `-reward.format_penalty`; the episode's shaped reward
(the reward group's terms, weighted and summed: tau2train.rollout.shaping; reward=tau2: tau2's
own reward) is added to the last completion. AReaL then spreads rewards backwards with
`rollout.agent.turn_discount` (= reward.turn_discount; reward[i] += turn_discount * reward[i+1])
when it exports the interactions, and trains on (reward + reward.bias) * reward.scaling.

The group filter judges a group by its episodes' rewards (one per episode: the shaped one, or
tau2's with group_filter.judge_by=tau2). AReaL hands the filter only the exported
per-completion rows (penalties and turn discount included, one row per completion, nothing
marking which rows are one episode's), so the workflow records each episode's rewards under
AReaL's task id, which AReaL's workflow context holds both while the group's episodes run and
when it calls the filter (areal/infra/workflow_executor.py:1045,1099).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from tau2.data_model.tasks import RewardType, Task

from tau2train.compat.areal import rollout_task_id, stats_scope
from tau2train.rollout.chat import Completion
from tau2train.rollout.group_table import GroupTable
from tau2train.schemas import GroupFilterConfig


def completion_rewards(
    completions: list[Completion], episode_reward: float, format_penalty: float
) -> dict[str, float]:
    """Reward per completion id, in the order the completions were made."""
    rewards = {
        c.id: -float(format_penalty) if c.problem else 0.0 for c in completions
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


def record_domain_stats(domain: str, reward: float, shaped: float | None = None) -> None:
    """An episode's tau2 reward, success and shaped reward under its domain on AReaL's stats
    tracker, in the scope AReaL's own `reward` goes to (`rollout/` while training,
    `eval-rollout/` for validation): averaged over a step's episodes,
    `eval-rollout/<domain>/pass^1` is the validation pass^1 of that domain (tau2's, whatever
    reward trains), and wandb draws one curve per domain. No-op outside an AReaL rollout."""
    from tau2.metrics.agent_metrics import is_successful

    scope = stats_scope()
    if scope is None:
        return
    scope.scalar(**{f"{domain}/reward": float(reward), f"{domain}/pass^1": float(is_successful(reward)),
                    f"{domain}/shaped_reward": float(reward if shaped is None else shaped)})


@dataclass
class GroupFilter(GroupFilterConfig):
    """AReaL's dynamic filter, the one place AReaL hands over a task's whole group of rollouts
    (rows: one per completion): keep the group only if at least `min_episodes` of its episodes
    are left (the others failed and were dropped alone) and the mean of their rewards is within
    the configured bounds (a solved group teaches little; upstream drops > 0.95), judged by
    the episodes' shaped rewards or tau2's (`judge_by`); `min_episodes` is the group_filter's
    least_kept. With `baseline="group"` a kept group's rows are measured against the mean of
    its episodes' shaped rewards, the rows' own (group_baseline). Without recorded episode
    rewards (called outside AReaL's rollout) the mean is that of the group's "rewards". A
    top-level class, so AReaL can ship it to its rollout workers by pickling."""

    def __call__(self, group: dict[str, Any]) -> bool:
        episodes = EPISODE_REWARDS.pop(rollout_task_id())
        if episodes and len(episodes) < self.min_episodes:  # the others failed (losses.py)
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
