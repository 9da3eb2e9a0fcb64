"""The terms a shaped reward sums (reward.terms), and what each is given: the episode.

A term is a function `fn(context: RewardContext, **args) -> float`, named in config by its
import path (`reward.terms=[{_target_: mypkg.terms.fn, weight: 0.5, args: {...}}]`). The
shipped ones:

- `tau2`: tau2's own reward (on econfig.reward_basis): reward=tau2 is exactly what training
  gave before the reward group existed.
- `db_check`: tau2's database check alone: 1 when the final DB is the gold actions' DB,
  else 0; where tau2 ran no DB check (an episode that ended prematurely, a task without
  criteria) its reward, which is then what a [DB] basis gives.
- `partial_actions`: the fraction of the task's gold actions (evaluation_criteria.actions)
  some tool call of the episode matched, as tau2's ActionEvaluator matches them (name, and
  the arguments the action compares), except that a call must carry every compared argument:
  tau2 compares only the keys a call has, so a call with no arguments would match any gold
  action of its name. 1.0 for a task without gold actions (as tau2's ACTION check).
"""

from __future__ import annotations

from dataclasses import dataclass

from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage
from tau2.data_model.simulation import RewardInfo, SimulationRun
from tau2.data_model.tasks import Action, Task

from tau2train.rollout.chat import Completion


@dataclass(frozen=True)
class RewardContext:
    """One finished episode, as a term sees it: the τ² task (the one scored, on its reward
    basis), tau2's record of the episode (messages, termination), tau2's RewardInfo, the agent's
    completions (each with its format problem, if any) and the τ² domain."""

    task: Task
    simulation: SimulationRun
    reward_info: RewardInfo
    completions: tuple[Completion, ...] = ()
    domain: str = ""


def tau2(context: RewardContext) -> float:
    """tau2's own reward of the episode."""
    return float(context.reward_info.reward)


def db_check(context: RewardContext) -> float:
    """tau2's database check alone (see the module's docs)."""
    check = context.reward_info.db_check
    return float(check.db_reward) if check is not None else float(context.reward_info.reward)


def partial_actions(context: RewardContext) -> float:
    """The share of the task's gold actions the episode's tool calls matched (module docs)."""
    criteria = context.task.evaluation_criteria
    gold = (criteria.actions or []) if criteria is not None else []
    if not gold:
        return 1.0
    calls = tool_calls(context.simulation)
    return sum(any(matches(action, call) for call in calls) for action in gold) / len(gold)


def tool_calls(simulation: SimulationRun) -> list[ToolCall]:
    """Every tool call of the episode, the agent's and the user's, as tau2's evaluators collect them."""
    return [call for m in simulation.messages
            if isinstance(m, (AssistantMessage, UserMessage)) and m.is_tool_call() for call in m.tool_calls]


def matches(action: Action, call: ToolCall) -> bool:
    """tau2's Action.compare_with_tool_call, with every compared argument required of the call."""
    if action.name != call.name:
        return False
    compared = action.arguments if action.compare_args is None else action.compare_args
    if any(key in action.arguments and key not in call.arguments for key in compared):
        return False
    return action.compare_with_tool_call(call)
