"""The SFT file of the released AReaL-tau2-data folder (`tau2_sft_train.jsonl`), one line a
training example, parsed into chat messages a chat template renders. Standard library only:
tokenising is the launch side's (tau2train.launch.sft), checking the whole file the config
side's (tau2train.config.areal_sft).

A line, as the dataset card (huggingface.co/datasets/inclusionAI/AReaL-tau2-data, README.md
"SFT Data Format") documents it:

    {"messages": [{"role": "system", "content": "<system prompt with policy and tools>"},
                  {"role": "user" | "assistant" | "tool", "content": ..., ...}, ...],
     "answer":   {"role": "assistant", "content": ..., "thinking": ..., "tool_calls": [...]},
     "metadata": {"source_dialog_id": "airline_dialog_42", "turn_index": 2, "scenario_id": ...,
                  "correct": 1, "reward": 1.0, ...}}

`messages` is the dialog up to the turn, `answer` the assistant turn trained on. Earlier
assistant turns carry their thinking as `reasoning`; a tool call is either
`{"name", "arguments": {...}}` or OpenAI's `{"id", "type": "function", "function": {"name",
"arguments": "<json string>"}}`. The system message already holds the domain's policy and
tools as text (the card's "<system prompt with policy and tools>"); whether it does is checked
per row (`system_lists_tools`), so tools are added to the template only where missing.

Parsed, every message is in the shape Hugging Face chat templates take (Qwen3's included):
thinking as `reasoning_content`, each tool call as `{"type": "function", "function": {"name",
"arguments": {...}}}` with the arguments a JSON object, whichever shape the line used, so
both shapes render the same tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tau2train.records.areal_tau2 import parse_line, row_domain

SFT_FILE = "tau2_sft_train.jsonl"
ROLES = ("system", "user", "assistant", "tool")
# Where a line states its domain, and its per-domain ids: key paths (records.areal_tau2.row_domain).
SFT_DOMAIN = ("metadata", "domain")
SFT_DOMAIN_IDS = (("metadata", "source_dialog_id"), ("metadata", "scenario_id"))
# Where a line's thinking may be: the answer's key, then an earlier assistant message's.
ANSWER_THINKING = "thinking"
HISTORY_THINKING = ("reasoning", "reasoning_content", "thinking")


@dataclass(frozen=True)
class Example:
    """One parsed line: the dialog before the answer, the answer turn, and its labels."""

    line: int
    domain: str
    messages: tuple[dict[str, Any], ...]
    answer: dict[str, Any]
    correct: int


def sft_file(folder: str | Path) -> Path:
    return Path(folder) / SFT_FILE


def tool_call(call: Any, where: str) -> dict[str, Any]:
    """One tool call in either released shape, as `{"type": "function", "function": {"name",
    "arguments": {...}}}` (ValueError naming `where` if it is neither)."""
    if not isinstance(call, dict):
        raise ValueError(f"{where} is not an object")
    inner = call.get("function", call)
    if not isinstance(inner, dict) or not isinstance(inner.get("name"), str) or not inner["name"]:
        raise ValueError(f"{where} has no name (expected {{name, arguments}} or {{type, function: {{name, arguments}}}})")
    arguments = inner.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} ({inner['name']}): arguments are not valid JSON ({e})") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"{where} ({inner['name']}): arguments are not a JSON object")
    return {"type": "function", "function": {"name": inner["name"], "arguments": arguments}}


def chat_message(message: Any, where: str, thinking_keys: tuple[str, ...] = HISTORY_THINKING) -> dict[str, Any]:
    """One message as a chat template takes it (ValueError naming `where` if malformed)."""
    if not isinstance(message, dict):
        raise ValueError(f"{where} is not an object")
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"{where} has role {role!r} (valid: {', '.join(ROLES)})")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"{where}: content is not a string")
    out: dict[str, Any] = {"role": role, "content": content or ""}
    if role != "assistant":
        for key in ("name", "tool_call_id"):
            if isinstance(message.get(key), str):
                out[key] = message[key]
        return out
    thinking = next((message[k] for k in thinking_keys if message.get(k)), None)
    if thinking is not None:
        if not isinstance(thinking, str):
            raise ValueError(f"{where}: thinking is not a string")
        out["reasoning_content"] = thinking
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ValueError(f"{where}: tool_calls is not a list")
    if calls:
        out["tool_calls"] = [tool_call(c, f"{where} tool_calls[{i}]") for i, c in enumerate(calls)]
    return out


def parse_example(text: str, line: int) -> Example:
    """One line of the SFT file (ValueError saying what is wrong)."""
    record = parse_line(text)
    history = record.get("messages")
    if not isinstance(history, list) or not history:
        raise ValueError("no messages (the dialog before the answer: a non-empty list)")
    messages = tuple(chat_message(m, f"messages[{i}]") for i, m in enumerate(history))
    if messages[0]["role"] != "system":
        raise ValueError(f"messages[0] has role {messages[0]['role']!r}, expected the system prompt")
    answer = record.get("answer")
    if not isinstance(answer, dict):
        raise ValueError("no answer object (the assistant turn trained on)")
    answer = chat_message({**answer, "role": answer.get("role", "assistant")}, "answer", (ANSWER_THINKING,))
    if answer["role"] != "assistant":
        raise ValueError(f"answer has role {answer['role']!r}, expected assistant")
    if not answer["content"] and not answer.get("tool_calls"):
        raise ValueError("answer has neither content nor tool_calls")
    metadata = record.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError("no metadata object")
    correct = metadata.get("correct")
    if correct not in (0, 1) or isinstance(correct, bool):
        raise ValueError(f"metadata.correct is {correct!r} (valid: 0 or 1)")
    return Example(line, row_domain(record, SFT_DOMAIN, SFT_DOMAIN_IDS), messages, answer, int(correct))


def system_lists_tools(system: str, tool_names: list[str]) -> bool:
    """Whether a system prompt already lists every tool as a JSON schema (`"name": "<tool>"`
    for each name): then the chat template must not list them again."""
    compact = system.replace('": "', '":"')
    return bool(tool_names) and all(f'"name":"{name}"' in compact for name in tool_names)
