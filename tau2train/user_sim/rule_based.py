"""A rule-based user simulator for τ²'s `mock` domain: no LLM, no GPU, no weights.

It is NOT a user model. It exists so that the laptop-sized "miniature recipe" and smoke runs
have a user simulator without serving an LLM; never report numbers scored against it. It
speaks the OpenAI chat-completions protocol, so tau2's user simulator (tau2train's episodes)
talks to it as to an LLM at `econfig.user_llm_base_url`, and it plays the user side of a mock
task from what that simulator sends: the `<scenario>` in the system prompt and the
conversation so far. It never needs to know which task it plays.

How it plays (one rule per kind of request, `RULES`):
  1. opening: one plain request made from the scenario, e.g. "Please mark task_1 as
     completed."; a task id the scenario lacks is taken from the conversation so far (a
     task's message history may name it, e.g. task_2);
  2. when the agent answers in text: if it asks a question (and says nothing is done yet),
     the request once more (which also answers a confirmation question), at most
     MAX_REQUESTS in all; otherwise tau2's ###TRANSFER### when it says it transfers the user,
     else ###STOP###.
Each mock task is played (`PLAYED`) or left out with its reason (`LEFT_OUT`); a left-out
task's scenario, or one no rule reads, is refused with HTTP 400 saying so (the episode then
fails as the user simulator's, and is discarded rather than scored).

    python -m tau2train.user_sim.rule_based --host 127.0.0.1 --port 0 [--domain mock]
    tau2train-user-sim user_sim=rule_based      # the same, started and recorded as any user sim

It ignores the SGLang launch flags tau2train-user-sim passes (--model-path, --tp, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError

# tau2.user.base's end-of-conversation tokens (tests/test_rule_based_user.py checks they match).
STOP = "###STOP###"
TRANSFER = "###TRANSFER###"
# What it calls itself in errors and logs: named as what it is, everywhere.
NAME = "rule-based user simulator (not an LLM; smoke runs only)"

# The domains it has rules for, and per domain the tasks it plays and those it leaves out.
PLAYED: dict[str, tuple[str, ...]] = {
    "mock": (
        "create_task_1",
        "create_task_1_with_env_assertions",
        "update_task_1",
        "update_task_with_message_history",
        "update_task_with_initialization_data",
        "update_task_with_initialization_actions",
        "update_task_with_history_and_env_assertions",
        "impossible_task_1",
    ),
}
LEFT_OUT: dict[str, dict[str, str]] = {
    "mock": {
        "create_task_1_nl_eval": (
            "its reward says nothing about the agent: it scores on DB and COMMUNICATE, but lists "
            "no gold actions, env assertions or communicate_info, so tau2 gives every agent 1.0 "
            "(whether it creates the task its scenario asks for, or does nothing); only its NL "
            "assertions (task created, user complimented) tell agents apart, and they need an NL "
            "judge (econfig.nl_judge, reward_basis NL_ASSERTION)"
        ),
    },
}

# A conversation's own requests (MAX_REQUESTS) and its length (MAX_MESSAGES) are bounded:
# past either, the user stops.
MAX_REQUESTS = 2
MAX_MESSAGES = 60
TASK_ID = re.compile(r"\btask_\d+\b")
# A reply that reports something done, or offers more help, is not a question before acting.
REPORTS_DONE = re.compile(r"\b(done|created|completed|marked|updated|deleted|transferr\w*)\b", re.I)
CLOSING = re.compile(r"\banything else\b|\banything more\b", re.I)
TRANSFERS = re.compile(r"\btransferr\w*\b|\bhuman agent\b", re.I)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Coverage:
    """What the rules do with one domain's tasks: play them, or leave them out (task id ->
    the reason, in words a user can read)."""

    domain: str
    played: tuple[str, ...]
    left_out: dict[str, str] = field(default_factory=dict)


def coverage(domain: str, key: str = "domain") -> Coverage:
    """The tasks of `domain` the rules play and leave out; ConfigError (`key`: where the domain
    was given) for a domain without rules, before anything is started."""
    if domain not in PLAYED:
        raise ConfigError(
            key, domain,
            f"the {NAME} has rules only for tau2's mock tasks",
            valid=sorted(PLAYED),
            fix="use domain=mock with user_sim=rule_based, or serve an LLM user simulator "
            "(e.g. user_sim=qwen2_5_7b) for this domain",
        )
    return Coverage(domain, PLAYED[domain], dict(LEFT_OUT.get(domain, {})))


# -- the rules ----------------------------------------------------------------------------------

class NotPlayed(LookupError):
    """This scenario is not played (no rule reads it, or its task is left out): the message
    says why, for the episode's record."""


@dataclass(frozen=True)
class Rule:
    """One kind of request: a scenario it applies to, and the request in words (given the
    scenario's match and the task id the conversation names, if any)."""

    name: str
    applies: re.Pattern
    request: Callable[[re.Match, str | None], str]


def _completion_request(match: re.Match, task_id: str | None) -> str:
    return f"Please mark {task_id} as completed." if task_id else "Please mark my task as completed."


RULES: tuple[Rule, ...] = (
    Rule("create a task",
         re.compile(r"\b(?:create|request) a (?:new )?task called '(?P<title>[^']+)' for (?P<user>user_\w+)", re.I),
         lambda m, _: f"Please create a task called '{m['title']}' for {m['user']}."),
    Rule("mark a task completed", re.compile(r"\bmark(?:ed)?\b[^.]*\bas completed\b", re.I), _completion_request),
    Rule("delete every task", re.compile(r"\bdelete all (?:your|my) (?:current )?tasks\b", re.I),
         lambda m, _: "Please delete all my current tasks."),
)


@dataclass(frozen=True)
class Said:
    """One turn as this user sees it: its own ("me") or the agent's."""

    me: bool
    text: str


def instructions_of(scenario: str) -> str:
    """The scenario's instructions (tau2 writes "Persona: ... Instructions: ...")."""
    return scenario.split("Instructions:", 1)[-1].strip()


def request_for(scenario: str, conversation: list[Said]) -> str:
    """The user's request: the first rule that reads the scenario, with the task id the
    scenario names, else the first one the conversation names."""
    instructions = instructions_of(scenario)
    for rule in RULES:
        match = rule.applies.search(instructions)
        if match:
            named = TASK_ID.search(instructions) or TASK_ID.search(" ".join(s.text for s in conversation))
            return rule.request(match, named.group(0) if named else None)
    raise NotPlayed(f"the {NAME} has no rule for this scenario: {instructions[:300]!r}")


def requests_made(scenario: str, conversation: list[Said]) -> int:
    """How often this user has made its request: its own turns that are the request it would
    have made at that point (turns of a task's message history are not)."""
    return sum(
        1 for i, said in enumerate(conversation)
        if said.me and said.text == request_for(scenario, conversation[:i])
    )


def asks_before_acting(reply: str) -> bool:
    """The agent's reply ends in a question, without reporting anything done or offering more
    help (a confirmation question, or one asking for details)."""
    sentences = SENTENCE_END.split(reply.strip())
    if not sentences[-1].endswith("?") or CLOSING.search(reply):
        return False
    return not REPORTS_DONE.search(" ".join(sentences[:-1]))


def next_turn(scenario: str, conversation: list[Said]) -> str:
    """The user's next message, from the scenario and the conversation so far."""
    request = request_for(scenario, conversation)
    asked = requests_made(scenario, conversation)
    if asked == 0 and len(conversation) < MAX_MESSAGES:
        return request
    reply = next((s.text for s in reversed(conversation) if not s.me), "")
    if asked < MAX_REQUESTS and len(conversation) < MAX_MESSAGES and asks_before_acting(reply):
        return request
    if TRANSFERS.search(reply):
        return f"Okay, thank you. {TRANSFER}"
    return f"Thank you, that is all. {STOP}"


# -- the chat-completions request ---------------------------------------------------------------

def _text(content) -> str:
    """A message's text (OpenAI content: a string, a list of parts, or null)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def read_request(messages: list[dict]) -> tuple[str, list[Said]]:
    """The scenario and the conversation of a user-simulator request. tau2 flips roles for its
    simulator: the user's own turns arrive as "assistant", the agent's as "user"."""
    system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
    if "<scenario>" not in system:
        raise NotPlayed(f"the {NAME} needs tau2's user-simulator system prompt (with its <scenario>)")
    scenario = system.split("<scenario>", 1)[1].rsplit("</scenario>", 1)[0].strip()
    conversation = [
        Said(me=m["role"] == "assistant", text=_text(m.get("content")))
        for m in messages if m.get("role") in ("assistant", "user")
    ]
    return scenario, conversation


def left_out_scenarios(domain: str) -> dict[str, str]:
    """Scenario (as tau2 writes it into the prompt) -> why it is refused, for the left-out
    tasks of `domain` whose scenario no played task shares."""
    from tau2.registry import registry  # the server's import, not the data's above

    tasks = {task.id: str(task.user_scenario).strip() for task in registry.get_tasks_loader(domain)(None)}
    played = {tasks[t] for t in PLAYED[domain] if t in tasks}
    return {
        tasks[task_id]: f"the {NAME} leaves out {domain} task {task_id}: {reason}"
        for task_id, reason in LEFT_OUT.get(domain, {}).items()
        if task_id in tasks and tasks[task_id] not in played
    }


def completion(text: str, model: str, n: int) -> dict:
    """An OpenAI chat completion holding `text`."""
    return {
        "id": f"chatcmpl-rule-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


# -- the server ---------------------------------------------------------------------------------

class RuleBasedUser:
    """The HTTP server (POST /v1/chat/completions, GET /v1/models, GET /health) on its own
    thread: `start()` returns its base URL, `stop()` ends it. Any model name is answered."""

    def __init__(self, domain: str = "mock", host: str = "127.0.0.1", port: int = 0,
                 served_model_name: str = "rule-based-user-mock"):
        coverage(domain, "--domain")
        self.domain, self.host, self.port, self.name = domain, host, port, served_model_name
        self.refused = left_out_scenarios(domain)
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._failed: Exception | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> str:
        """Serve on a thread of its own; the base URL once it listens, or the reason it could
        not (e.g. OSError: the port is taken)."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()
        if self._failed is not None:
            self._thread.join(10)
            raise self._failed
        return self.base_url

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
            loop.run_until_complete(site.start())
        except Exception as error:  # start() raises it in the caller's thread
            self._failed = error
            loop.run_until_complete(self._runner.cleanup())
            loop.close()
            ready.set()
            return
        self.port = site._server.sockets[0].getsockname()[1]
        self._loop = loop
        ready.set()
        loop.run_forever()
        loop.close()

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.name, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            text = self.answer(body.get("messages") or [])
        except NotPlayed as why:
            return web.json_response({"error": {"message": str(why), "type": "invalid_request_error"}}, status=400)
        return web.json_response(completion(text, body.get("model") or self.name, next(self._ids)))

    def answer(self, messages: list[dict]) -> str:
        """The user's next message; NotPlayed for a left-out task or a scenario no rule reads."""
        scenario, conversation = read_request(messages)
        if scenario in self.refused:
            raise NotPlayed(self.refused[scenario])
        return next_turn(scenario, conversation)


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground until interrupted; SGLang's other launch flags are ignored."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--domain", default="mock")
    parser.add_argument("--served-model-name", default="rule-based-user-mock")
    args, _ = parser.parse_known_args(argv)
    try:
        server = RuleBasedUser(args.domain, args.host, args.port, args.served_model_name)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    try:
        url = server.start()
    except OSError as error:
        print(f"error: the {NAME} cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        sys.exit(1)
    played = coverage(args.domain)
    print(f"{NAME} for tau2's {args.domain} tasks ({len(played.played)} played, left out: "
          f"{', '.join(played.left_out) or 'none'}) serving on {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
