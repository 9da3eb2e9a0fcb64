"""One τ² episode as it happened: the record a rollout writes and reports read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tau2train.schemas.declare import setting


@dataclass
class RunInfo:
    """One τ² episode as it happened: what was said, how long it took, what it earned."""

    task_id: str = setting("", "τ² task id the episode played.")
    split: str | None = setting(None, "Task split the task was drawn from.")
    domain: str | None = setting(None, "τ² domain the episode ran in.")
    source: str | None = setting(None, "AReaL-tau2-data rows: the RL file's line the task came from, and its "
        "DB snapshot.")
    reward: float = setting(0.0, "Episode reward tau2's evaluator gave.")
    shaped_reward: float | None = setting(None, "Episode reward the trainer saw: the reward group's terms, "
        "weighted and summed (reward=tau2: the same as reward); null when the episode failed outside the "
        "policy.")
    reward_terms: list[dict[str, Any]] = setting(help="Each term of the shaped reward: {term: its _target_, "
        "weight, value}.", factory=list)
    termination_reason: str | None = setting(None, "Why the episode ended, as tau2 names it (agent_stop, "
        "user_stop, max_steps, ...).")
    duration: float = setting(0.0, "Seconds the episode took.")
    agent_latencies: list[float] = setting(help="Seconds of each agent LLM call.", factory=list)
    user_latencies: list[float] = setting(help="Seconds of each user-simulator call.", factory=list)
    completion_rewards: dict[str, float] = setting(help="Reward handed to AReaL per agent completion id "
        "(format penalties + the shaped episode reward on the last).", factory=dict)
    format_problems: dict[str, str] = setting(help="Completion id -> what was malformed in it.", factory=dict)
    messages: list[dict[str, Any]] = setting(help="The dialogue: agent, user and tool messages in order.",
        factory=list)
    task: dict[str, Any] | None = setting(None, "The τ² task, as tau2 serialises it.")
    reward_info: dict[str, Any] | None = setting(None, "tau2's reward breakdown (DB match, assertions, "
        "actions, ...).")
    error: str | None = setting(None, "What went wrong, when the episode failed.")
    failure: str | None = setting(None, "Why training discarded the episode, when a failure outside the "
        "policy ended it: user_sim (the user simulator failed after its retries), timeout (past "
        "trainer.episode_timeout) or evaluator (tau2's evaluator raised).")

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)

    def __str__(self) -> str:
        def stats(xs: list[float]) -> str:
            if not xs:
                return "n/a"
            return f"{len(xs)} calls, mean {sum(xs) / len(xs):.2f}s, max {max(xs):.2f}s"

        lines = [
            f"Task: {self.task_id}" + (f" (split {self.split})" if self.split else "")
            + (f" from {self.source}" if self.source else ""),
            f"Reward: {self.reward}",
        ]
        if self.reward_terms:
            terms = (f"{t['weight']:g} x {t['value']:g} ({t['term'].rsplit('.', 1)[-1]})" for t in self.reward_terms)
            lines.append(f"Shaped reward: {self.shaped_reward} = " + " + ".join(terms))
        if self.termination_reason:
            lines.append(f"Ended by: {self.termination_reason} after {self.duration:.2f}s")
        lines += [
            f"Agent latency: {stats(self.agent_latencies)}",
            f"User latency: {stats(self.user_latencies)}",
        ]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.reward_info:
            lines.append("Reward info: " + json.dumps(self.reward_info, default=str))
        for completion_id, problem in self.format_problems.items():
            lines.append(f"Malformed completion {completion_id}: {problem}")
        if self.completion_rewards:
            lines.append("Completion rewards: " + json.dumps(self.completion_rewards))
        lines.append("Messages:")
        for i, message in enumerate(self.messages):
            role = message.get("role", "?")
            content = message.get("content") or ""
            lines.append(f"[{i}] {role}: {content}")
            for call in message.get("tool_calls") or []:
                lines.append(f"    -> {call.get('name')}({json.dumps(call.get('arguments'))})")
        return "\n".join(lines)
