"""LLM calls of a τ² episode: tau2 messages in, tau2 messages out, over the OpenAI API.

tau2 talks to LLMs through litellm, which keeps neither the completion id (AReaL keys
per-completion rewards by it) nor malformed tool-call arguments (it crashes on them, and
they are exactly what RL must penalise). So the episode's players call the endpoint through
`Chat`, which keeps both and judges each completion's format against the offered tools.

tau2 is synchronous: an episode runs in a worker thread, while the HTTP request runs as a
coroutine on the event loop that owns the AsyncOpenAI client (and AReaL's http_client).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from openai import APIConnectionError, APIStatusError, AsyncOpenAI
from pydantic import ValidationError
from tau2.data_model.message import AssistantMessage, Message, ToolCall
from tau2.environment.tool import Tool
from tau2.utils.llm_utils import to_litellm_messages

# Sampling arguments the Chat Completions API takes by name; anything else goes in extra_body.
logger = logging.getLogger("tau2train.rollout.chat")

OPENAI_SAMPLING_ARGS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "top_logprobs",
    }
)
# Where unparseable tool-call arguments are kept, so the trajectory shows what was produced.
UNPARSED_ARGUMENTS_KEY = "_unparsed_arguments"
# The agent's optional `think` tool is answered here, not by the environment (which has no
# such tool, and whose replay in tau2's evaluator must not see it).
THINK_TOOL_NAME = "think"
THOUGHT_ACK = "Your thought is recorded. Please continue."
# Consecutive thoughts answered before the next one is passed on (and fails as a tool call).
MAX_CONSECUTIVE_THOUGHTS = 8


class EpisodeCancelled(Exception):
    """The episode ran out of time; its thread stops at the next LLM call."""


@dataclass
class Completion:
    """One LLM call, as the reward rules and the trajectory log need it."""

    id: str
    latency: float
    # Why the output is malformed; None when it is well formed.
    problem: str | None = None


@dataclass
class Chat:
    """Blocking chat calls for an episode thread, served on `loop` by `client`."""

    client: AsyncOpenAI
    loop: asyncio.AbstractEventLoop
    model: str
    gen_args: dict[str, Any] = field(default_factory=dict)
    # "agent" or "user": which side an LLM failure is blamed on.
    role: str = "agent"
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Seconds the endpoint may stay unreachable while a call waits and retries (0: no waiting;
    # the user simulator's chat gets econfig.user_llm_outage_s).
    outage_s: float = 0.0
    completions: list[Completion] = field(default_factory=list)
    outage: Outage = field(default_factory=lambda: Outage())
    # (position in the tau2 history, messages) of thoughts answered here, replayed each call.
    thoughts: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)

    def __call__(
        self,
        messages: list[Message],
        tools: list[Tool] | None = None,
        tool_choice: str | None = None,
    ) -> AssistantMessage:
        history = [_without_nulls(m) for m in to_litellm_messages(messages)]
        thinking = any(tool.name == THINK_TOOL_NAME for tool in tools or [])
        for _ in range(MAX_CONSECUTIVE_THOUGHTS):
            message = self._complete(self._with_thoughts(history), tools, tool_choice)
            if not (thinking and _only_thoughts(message)):
                return message
            self.thoughts.append((len(history), _thought_messages(message)))
        return self._complete(self._with_thoughts(history), tools, tool_choice)

    def _complete(self, messages, tools, tool_choice) -> AssistantMessage:
        request = self._request(messages, tools, tool_choice)
        start = time.perf_counter()
        while True:
            try:
                response = self._call_on_loop(self.client.chat.completions.create(**request))
                break
            except (EpisodeCancelled, asyncio.CancelledError):
                raise
            except Exception as e:
                if self.cancelled.is_set():  # whatever failed after the episode timed out
                    raise EpisodeCancelled("episode timed out") from e
                if not (is_outage(e) and self.outage.wait(self.outage_s, self.cancelled, str(self.client.base_url))):
                    self.outage.end()
                    raise LLMCallFailed(self.role, self.client.base_url, e) from e
        self.outage.end()
        message, problem = to_tau2_message(response, tools or [])
        self.completions.append(
            Completion(id=response.id, latency=time.perf_counter() - start, problem=problem)
        )
        return message

    def _with_thoughts(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        merged, start = [], 0
        for position, extra in self.thoughts:
            merged += history[start:position] + extra
            start = position
        return merged + history[start:]

    def _request(self, messages, tools, tool_choice) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            request["tools"] = [openai_schema(tool) for tool in tools]
            request["tool_choice"] = tool_choice or "auto"
        extra_body = dict(self.gen_args.get("extra_body") or {})
        for key, value in self.gen_args.items():
            if key in OPENAI_SAMPLING_ARGS:
                request[key] = value
            elif key != "extra_body":
                extra_body[key] = value
        if extra_body:
            request["extra_body"] = extra_body
        return request

    def _call_on_loop(self, coroutine):
        if self.cancelled.is_set():
            coroutine.close()
            raise EpisodeCancelled("episode timed out")
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop is closed: the run is ending (Ctrl-C, SIGTERM)
            coroutine.close()
            raise EpisodeCancelled("the run's event loop is closed") from None
        try:
            while True:
                try:
                    return future.result(timeout=0.5)
                except TimeoutError:
                    if self.loop.is_closed():  # nothing left to cancel the request on
                        raise EpisodeCancelled("the run is ending") from None
                    if self.cancelled.is_set():
                        future.cancel()
                        raise EpisodeCancelled("episode timed out") from None
        except CancelledError:
            raise EpisodeCancelled("episode timed out") from None


class _SchemaKey:
    """A tool, compared by what its OpenAI schema is made of (pydantic Tools are unhashable)."""

    __slots__ = ("tool", "key")

    def __init__(self, tool: Tool):
        self.tool = tool
        self.key = (tool.name, tool.params, tool.short_desc, tool.long_desc, tool._use_short_desc)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return self.key == other.key


@lru_cache(maxsize=1024)
def _cached_schema(key: _SchemaKey) -> dict[str, Any]:
    return as_sglang_renders(key.tool.openai_schema)


def as_sglang_renders(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's OpenAI schema as SGLang's server passes it to the chat template: its `Tool`
    model dumped (sglang/srt/entrypoints/openai/protocol.py `Function`: description, name,
    parameters, strict=false, in that order; serving_chat.py `tool.model_dump()`).

    `strict` is prompt text: the template writes each tool as JSON. Key order is not, with
    tau2train's template, which sorts a tool's keys: AReaL's proxy rebuilds every training
    request's tools in openai's TypedDict order whatever order they are sent in, so only a
    sorted rendering makes a training prompt the prompt an evaluation through SGLang (or the
    CPU server, which parses requests as SGLang does) sees, token for token
    (tests/test_compat.py checks the three renderings)."""
    function = schema["function"]
    return {"type": "function", "function": {
        "description": function.get("description"), "name": function["name"],
        "parameters": function.get("parameters"), "strict": bool(function.get("strict", False)),
    }}


def openai_schema(tool: Tool) -> dict[str, Any]:
    """tau2's `tool.openai_schema` in the form SGLang renders it (`as_sglang_renders`),
    computed once per tool: pydantic's JSON-schema generation costs ~0.5 ms a tool, i.e.
    several ms on every agent turn otherwise."""
    return _cached_schema(_SchemaKey(tool))


# HTTP statuses of a server that is restarting or overloaded rather than answering.
UNAVAILABLE_STATUSES = (502, 503, 504)
# Waits between retries while an endpoint is unreachable: doubling from the first, capped.
FIRST_WAIT_S, LONGEST_WAIT_S = 1.0, 15.0
# A training run's watch (tau2train.launch.outage) stops the run once a user simulator has been
# down for econfig.user_llm_outage_s. Episodes wait this much longer (at most the limit again),
# so that an outage the run stops for fails none of them: no group dropped, no data spent, and
# the run's one message is the last word.
WATCH_GRACE_S = 20.0


def give_up_after(limit_s: float) -> float:
    """Seconds an episode waits out an outage, given econfig.user_llm_outage_s."""
    return limit_s + min(WATCH_GRACE_S, limit_s)


def is_outage(error: Exception) -> bool:
    """The endpoint did not answer (refused, timed out) or said it cannot now (502/503/504)."""
    if isinstance(error, APIConnectionError):  # APITimeoutError included
        return True
    return isinstance(error, APIStatusError) and error.status_code in UNAVAILABLE_STATUSES


@dataclass
class Outage:
    """One chat's time without its endpoint: the wait now running, and all it has waited (the
    episode's time limit does not count it)."""

    since: float | None = None  # time.monotonic() when the endpoint stopped answering
    waits: int = 0
    waited: float = 0.0  # seconds of earlier outages

    def paused(self) -> float:
        """Seconds waited for the endpoint, the current outage included."""
        return self.waited + (time.monotonic() - self.since if self.since is not None else 0.0)

    def wait(self, limit_s: float, cancelled: threading.Event, url: str) -> bool:
        """Wait before the next try (bounded backoff); False once the endpoint has been down
        for `give_up_after(limit_s)` (then the call fails). EpisodeCancelled when the episode
        is stopped."""
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        left = give_up_after(limit_s) - (now - self.since)
        if left <= 0:
            return False
        if self.waits == 0:
            _log_outage(url, limit_s)
        delay = min(FIRST_WAIT_S * 2 ** self.waits, LONGEST_WAIT_S, left)
        self.waits += 1
        if cancelled.wait(delay):
            raise EpisodeCancelled("episode stopped while its endpoint was down")
        return True

    def end(self) -> None:
        if self.since is not None:
            self.waited += time.monotonic() - self.since
        self.since, self.waits = None, 0


_outage_logged: dict[str, float] = {}


def _log_outage(url: str, limit_s: float) -> None:
    """One warning per endpoint and half minute, not one per episode waiting."""
    now = time.monotonic()
    if now - _outage_logged.get(url, -60.0) >= 30.0:
        _outage_logged[url] = now
        logger.warning("%s is not answering; its episodes wait and retry (a training run stops once "
                       "it has been down for econfig.user_llm_outage_s=%g s)", url, limit_s)


class LLMCallFailed(Exception):
    """An LLM endpoint failed (after the client's retries); `role` says whose."""

    def __init__(self, role: str, base_url, cause: Exception):
        super().__init__(f"{role} LLM at {base_url} failed: {type(cause).__name__}: {cause}")
        self.role = role


def _only_thoughts(message: AssistantMessage) -> bool:
    calls = message.tool_calls or []
    return bool(calls) and all(call.name == THINK_TOOL_NAME for call in calls)


def _thought_messages(message: AssistantMessage) -> list[dict[str, Any]]:
    said = [_without_nulls(m) for m in to_litellm_messages([message])]
    acks = [
        {"role": "tool", "tool_call_id": call.id, "content": THOUGHT_ACK}
        for call in message.tool_calls
    ]
    return said + acks


def _without_nulls(message: dict[str, Any]) -> dict[str, Any]:
    # Servers such as SGLang reject `"tool_calls": null`; tau2's converter writes it.
    return {k: v for k, v in message.items() if v is not None or k == "content"}


def to_tau2_message(response, tools: list[Tool]) -> tuple[AssistantMessage, str | None]:
    """The first choice as a tau2 message, and what (if anything) is malformed in it."""
    choice = response.choices[0].message
    offered = {tool.name: tool for tool in tools}
    problems = []
    calls = []
    for raw in choice.tool_calls or []:
        name, text = raw.function.name, raw.function.arguments or ""
        try:
            arguments = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            problems.append(f"arguments of {name!r} are not a JSON object: {text[:200]!r}")
            arguments = {UNPARSED_ARGUMENTS_KEY: text}
        elif name not in offered:
            problems.append(f"call to unknown tool {name!r}")
        else:
            try:
                offered[name].params.model_validate(arguments)
            except ValidationError as e:
                problems.append(
                    f"arguments of {name!r} do not fit its schema: "
                    + "; ".join(err["msg"] + f" ({'.'.join(map(str, err['loc']))})" for err in e.errors())
                )
        calls.append(ToolCall(id=raw.id, name=name, arguments=arguments))
    content = choice.content
    if not calls and response.choices[0].finish_reason == "tool_calls":
        # the policy wrote a tool call the server's parser dropped: AReaL's proxy (SGLang's
        # parsers) skips calls to unknown tools and blocks that are not JSON, and reports
        # finish_reason "tool_calls" with none left
        problems.append("a tool call the server could not parse (unknown tool or invalid JSON)")
    elif not calls and (content is None or not content.strip()):
        problems.append("empty message with no tool call")
    message = AssistantMessage(
        role="assistant",
        content=content,
        tool_calls=calls or None,
        usage=response.usage.model_dump() if response.usage else None,
        cost=0.0,
    )
    return message, "; ".join(problems) or None
