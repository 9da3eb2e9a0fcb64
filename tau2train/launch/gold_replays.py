"""SFT data from gold replays: each task's gold actions played through the τ² episode training
plays (tau2's orchestrator, environment and evaluator, the run's user simulator), every agent
turn written as one SFT row in the AReaL-tau2-data format (tau2train.records.areal_sft), its
prompt exactly the messages and tools the policy is sent in training.

Only replays that tau2's evaluator scores 1.0 are written: a replay that fails says the user
simulator does not play its task, and the task is reported as left out.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from tau2train.records.areal_sft import SFT_FILE
from tau2train.rollout.chat import Chat, Completion
from tau2train.rollout.episode import find_task, play, scenario
from tau2train.schemas import EnvConfig

# What the gold agent says once its task's actions are done.
CLOSING = "Done: your request is complete."


@dataclass
class GoldChat(Chat):
    """The agent of a gold replay: each call is answered with the task's next gold action (a
    tool call), then CLOSING; each request is kept as the policy would have been sent it."""

    actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closing: str = CLOSING
    turns: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    def _complete(self, messages, tools, tool_choice):
        from tau2.data_model.message import AssistantMessage, ToolCall

        request = self._request(messages, tools, tool_choice)
        n = len(self.turns)
        if n < len(self.actions):
            name, arguments = self.actions[n]
            answer = {"role": "assistant", "content": "", "tool_calls": [{"name": name, "arguments": arguments}]}
            message = AssistantMessage(role="assistant", tool_calls=[ToolCall(id=f"gold{n}", name=name,
                                                                              arguments=arguments)])
        else:
            answer = {"role": "assistant", "content": self.closing}
            message = AssistantMessage(role="assistant", content=self.closing)
        self.turns.append((request, answer))
        self.completions.append(Completion(id=f"gold{n}", latency=0.0))
        return message


@dataclass(frozen=True)
class Replays:
    """What the gold replays of a split left: the SFT file and the tasks it covers."""

    path: Path
    rows: int
    tasks: tuple[str, ...]
    failed: dict[str, float]  # task id -> the reward its replay got (below 1.0)


@contextmanager
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a thread of its own, for Chat's blocking calls from this thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gold-replays-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def gold_actions(task) -> list[tuple[str, dict[str, Any]]]:
    criteria = task.evaluation_criteria
    return [(a.name, dict(a.arguments)) for a in (criteria.actions or []) if a.requestor == "assistant"]


def gold_closing(task) -> str:
    """CLOSING, saying what the task's communicate check looks for (tau2 finds each piece of
    communicate_info in the agent's messages)."""
    return " ".join([CLOSING, *(task.evaluation_criteria.communicate_info or [])])


def replay(task_id: str, split: str, econfig: EnvConfig, user_chat: Chat) -> tuple[float, GoldChat]:
    """One gold replay of `task_id`: its reward, and the agent's turns."""
    task = find_task(econfig.domain, split, task_id)
    agent = GoldChat(client=None, loop=None, model="gold", role="agent", actions=gold_actions(task),
                     closing=gold_closing(task))
    episode = play(scenario({"task_id": task_id, "split": split}, econfig), split, econfig, agent, user_chat)
    return episode.info.reward, agent


def sft_row(domain: str, task_id: str, turn: int, request: dict[str, Any], answer: dict[str, Any]) -> str:
    metadata = {"source_dialog_id": f"{domain}_{task_id}_gold", "turn_index": turn, "correct": 1, "reward": 1.0}
    return json.dumps({"messages": request["messages"], "answer": answer, "metadata": metadata})


def write_gold_sft(out_dir: Path, econfig: EnvConfig, split: str, task_ids: list[str],
                   user_url: str, user_model: str) -> Replays:
    """Replay each task of `task_ids`; write the SFT file of those scored 1.0 into `out_dir`."""
    rows: list[str] = []
    kept: list[str] = []
    failed: dict[str, float] = {}
    with running_loop() as loop:
        client = AsyncOpenAI(base_url=user_url, api_key="EMPTY", max_retries=econfig.user_llm_max_retries)
        for task_id in task_ids:
            user = Chat(client, loop, user_model, dict(econfig.user_llm_args or {}), role="user")
            reward, agent = replay(task_id, split, econfig, user)
            if reward < 1.0:
                failed[task_id] = reward
                continue
            kept.append(task_id)
            rows += [sft_row(econfig.domain, task_id, i, req, ans) for i, (req, ans) in enumerate(agent.turns)]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SFT_FILE
    path.write_text("".join(row + "\n" for row in rows))
    return Replays(path, len(rows), tuple(kept), failed)
