"""How an episode's outcome becomes the rewards AReaL trains on.

Rule: every agent completion starts at 0; a malformed one (unknown tool, arguments that are
not a JSON object or do not fit the tool's schema, a tool call the server's parser dropped, an
empty message with no tool call) gets `-reward.format_penalty`; the episode's shaped reward
(the reward group's terms, weighted and summed: tau2train.rollout.shaping; reward=tau2: tau2's
own reward) is added to the last completion. AReaL then spreads rewards backwards with
`rollout.agent.turn_discount` (= reward.turn_discount; reward[i] += turn_discount * reward[i+1])
when it exports the interactions, and trains on (reward + reward.bias) * reward.scaling.

The group filter judges a group by those episodes' rewards: tau2train.rollout.group_filter.
"""

from __future__ import annotations

from tau2.data_model.tasks import RewardType, Task

from tau2train.compat.areal import stats_scope
from tau2train.rollout.chat import Completion


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
