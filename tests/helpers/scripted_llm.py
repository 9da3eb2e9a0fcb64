"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1: the stand-in for LLMs.

The model name picks the script. Agent scripts replay a τ² task's gold actions (from its
evaluation criteria) or a deliberately wrong or malformed variant; the user script opens the
conversation by naming its task and ends it the way tau2's simulator does (###STOP###).

The user finds its task from the <scenario> in its system prompt; the agent from the user's
opening line ("[task:<domain>/<id>]") or, in solo mode, from the <ticket> in its prompt; or,
whatever user it talks to (a user simulator that names no task, e.g. the rule-based one), from
its model name: "<script>@<domain>/<task id>" (e.g. "gold@mock/update_task_1").

    python tests/helpers/scripted_llm.py --port 8000   # serve until interrupted

It also stands in for SGLang's server in tau2train-user-sim's tests
(`user_sim.server_module=helpers.scripted_llm`) and for a served checkpoint's in mode=eval's
(`eval.server.server_module=helpers.scripted_llm`): it answers GET /health, listens on
--host/--port and ignores the other launch arguments, except that a --model-path folder whose
config.json names a `tau2test_script` plays that agent script under any model name (so a
test's "checkpoints" differ the way trained weights would).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import itertools
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from aiohttp import web  # noqa: E402
from loguru import logger  # noqa: E402

logger.disable("tau2")
from tau2.registry import registry  # noqa: E402

GREETING = "Hi! How can I help you today?"
STOP = "###STOP###"
TASK_TAG = re.compile(r"\[task:([^/\]]+)/([^\]]+)\] \[episode:(\d+)\]")
# An agent model name that names its task: "<script>@<domain>/<task id>".
NAMED_TASK = re.compile(r"^(?P<script>[^@]+)@(?P<domain>[^/]+)/(?P<task>.+)$")
DOMAINS = ("airline", "retail", "mock")
# Agent scripts: the model name the agent is configured with.
# "alternate" plays gold in a task's even-numbered episodes and wrong in the odd ones, so
# repeated trials disagree and pass^k falls with k.
# "flaky" plays gold in even-numbered episodes and answers HTTP 500 (an endpoint failure, not
# a wrong answer) throughout the odd ones.
# "asker" asks the user a question (QUESTION) before playing gold.
AGENT_SCRIPTS = (
    "gold", "wrong", "alternate", "malformed", "empty", "thinker", "slow", "broken", "flaky", "asker",
)
QUESTION = "Before I change anything: could you confirm what you need?"
# The key of a test checkpoint's config.json that names the agent script it plays.
CHECKPOINT_SCRIPT_KEY = "tau2test_script"
# How long the "slow" agent takes to answer (tests give episodes a shorter timeout).
SLOW_SECONDS = 30.0


# Judge scripts (an NL-assertion judge's model name): "judge" finds an assertion met when the
# agent said every number it names; "judge-garbled" answers prose, not tau2's JSON;
# "judge-down" answers HTTP 500.
JUDGE_SCRIPTS = ("judge", "judge-garbled", "judge-down")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _all_tasks(domains=DOMAINS):
    for domain in domains:
        for task in registry.get_tasks_loader(domain)(None):
            yield domain, task


class EndpointDown(Exception):
    """The scripted endpoint fails this request (HTTP 500)."""


class EndpointUnavailable(Exception):
    """The scripted endpoint cannot serve now (HTTP 503, as a server going down says)."""


@dataclass
class Turn:
    """One scripted completion: tool calls (name, raw argument text), or text."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None


class Scripts:
    """Tasks indexed the ways a request can name them."""

    def __init__(self, domains=DOMAINS, gold_calls: dict[tuple[str, str], list[tuple[str, dict]]] | None = None):
        # (domain, task id) -> the gold calls a test states for a task whose criteria list none
        # (one scored on env assertions only), played instead of its (empty) actions
        self.gold_calls = dict(gold_calls or {})
        self.by_scenario: dict[str, tuple[str, object]] = {}
        self.by_ticket: dict[str, tuple[str, object]] = {}
        self.by_id: dict[tuple[str, str], object] = {}
        for domain, task in _all_tasks(domains):
            self.by_id[(domain, task.id)] = task
            # Scenarios or tickets shared by several tasks (some mock tasks) name none of them.
            for index, key in ((self.by_scenario, task.user_scenario), (self.by_ticket, task.ticket)):
                if key is not None:
                    key = str(key).strip()
                    index[key] = None if key in index else (domain, task)

    def agent_turns(self, script: str, task, solo: bool, domain: str | None = None) -> list[Turn]:
        calls = self.gold_calls.get((domain, task.id))
        if calls is None:
            calls = [(a.name, a.arguments) for a in (task.evaluation_criteria.actions or [])
                     if a.requestor == "assistant"]
        gold = [Turn(calls=[(name, json.dumps(arguments))]) for name, arguments in calls]
        if solo:
            ending = Turn(calls=[("done", "{}")])
        else:
            said = " ".join(task.evaluation_criteria.communicate_info or [])
            ending = Turn(text=f"All done. {said}".strip())
        if script == "wrong":
            gold = gold[:-1]
        elif script == "malformed":
            first = calls[0][0]
            gold = [
                Turn(calls=[("no_such_tool", "{}")]),
                Turn(calls=[(first, "{not json")]),
                Turn(calls=[(first, "{}")]),
            ] + gold
        elif script == "empty":
            gold = [Turn(text="")]
            ending = Turn(text="")
        elif script == "asker":
            gold = [Turn(text=QUESTION)] + gold
        elif script == "thinker":
            gold = [Turn(calls=[("think", json.dumps({"thought": "check the policy first"}))])] + gold
        return gold + [ending]


class ScriptedLLM:
    """The server; `start()` returns its base URL, `requests` counts requests per model."""

    def __init__(self, scripts: Scripts | None = None, port: int = 0, host: str = "127.0.0.1",
                 script: str | None = None, models: tuple[str, ...] = ("scripted",)):
        self.scripts = scripts or Scripts()
        # what GET /v1/models lists (one model: a server that answers to any name, as SGLang's)
        self.models = models
        # the agent script played whatever model name a request sends (a served "checkpoint")
        self.script = script
        self.port = port
        self.host = host
        self.requests: Counter[str] = Counter()
        # Authorization headers seen per model (to check which key reached which endpoint).
        self.auth: dict[str, set[str]] = {}
        # Episodes begun per (domain, task id), counted at the user's opening line.
        self.episodes: Counter[tuple[str, str]] = Counter()
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- serving -----------------------------------------------------------------------
    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()
        return self.base_url

    @property
    def base_url(self) -> str:
        """At the address it listens on (the loopback one when it listens on all)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/v1"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None  # stopped: stop() again does nothing, start() serves again (same port)

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        # Handlers still waiting (the "slow" script) are cancelled, not left dangling.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body.get("model", "")
        if self.script and not model.startswith("user"):
            model = self.script
        self.requests[model] += 1
        self.auth.setdefault(model, set()).add(request.headers.get("Authorization", ""))
        if model == "user-down":  # a server that is up but cannot serve now
            return web.json_response({"error": {"message": "scripted failure"}}, status=503)
        if model in ("broken", "judge-down", "user-error"):
            return web.json_response({"error": {"message": "scripted failure"}}, status=500)
        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        try:
            if model.startswith("user"):
                # the OpenAI SDK numbers its retries of a request (0: the first try)
                retry = int(request.headers.get("x-stainless-retry-count") or 0)
                turn = self._user_turn(body["messages"], retry)
            elif model.startswith("judge"):
                turn = self._judge_turn(model, body["messages"])
            else:
                turn = self._agent_turn(model, body["messages"])
        except EndpointDown:
            return web.json_response({"error": {"message": "scripted failure"}}, status=500)
        except EndpointUnavailable:
            return web.json_response({"error": {"message": "going down"}}, status=503)
        except LookupError as e:  # a task the script cannot tell apart: say so, loudly
            return web.json_response({"error": {"message": f"no script: {e}"}}, status=400)
        return web.json_response(self._completion(model, turn))

    # -- scripts -----------------------------------------------------------------------
    def _user_turn(self, messages: list[dict], retry: int = 0) -> Turn:
        system = messages[0]["content"]
        scenario = system.split("<scenario>", 1)[1].rsplit("</scenario>", 1)[0].strip()
        found = self.scripts.by_scenario[scenario]
        if found is None:
            raise LookupError("several tasks share this scenario")
        domain, task = found
        # tau2 flips roles for the simulator: its own earlier turns arrive as "assistant".
        if not any(m["role"] == "assistant" for m in messages):
            episode = self.episodes[(domain, task.id)]
            self.episodes[(domain, task.id)] += 1
            return Turn(text=f"Hello, I need help. [task:{domain}/{task.id}] [episode:{episode}]")
        return Turn(text=f"Thanks, that is all. {STOP}")

    def _judge_turn(self, script: str, messages: list[dict]) -> Turn:
        """tau2's NLAssertionsEvaluator prompt in, its JSON verdicts out (or prose)."""
        if script == "judge-garbled":
            return Turn(text="The agent did fine, I think.")
        prompt = messages[-1]["content"]
        conversation, outcomes = prompt.split("expectedOutcomes:", 1)
        said = " ".join(line for line in conversation.splitlines() if line.strip().startswith("assistant:"))
        verdicts = [
            {"expectedOutcome": outcome, "reasoning": "checked the numbers it names",
             "metExpectation": all(n in NUMBER.findall(said) for n in NUMBER.findall(outcome))}
            for outcome in ast.literal_eval(outcomes.strip())
        ]
        return Turn(text=json.dumps({"results": verdicts}))

    def _agent_turn(self, script: str, messages: list[dict]) -> Turn:
        named = NAMED_TASK.match(script)
        if named:
            return self._named_task_turn(named, messages)
        system = messages[0]["content"]
        solo = "<ticket>" in system
        if solo:
            ticket = system.split("<ticket>", 1)[1].rsplit("</ticket>", 1)[0].strip()
            found = self.scripts.by_ticket[ticket]
            if found is None:
                raise LookupError("several tasks share this ticket")
            (domain, task), episode = found, 0
        else:
            opening = next(m["content"] for m in messages if m["role"] == "user")
            domain, task_id, episode = TASK_TAG.search(opening).groups()
            task = self.scripts.by_id[(domain, task_id)]
        if script == "alternate":
            script = "gold" if int(episode) % 2 == 0 else "wrong"
        elif script == "flaky":
            if int(episode) % 2:
                raise EndpointDown
            script = "gold"
        said = [m for m in messages if m["role"] == "assistant"]
        done = len(said) - (0 if solo else 1)  # the orchestrator's greeting is not ours
        turns = self.scripts.agent_turns("gold" if script == "slow" else script, task, solo, domain)
        return turns[min(done, len(turns) - 1)]

    def _named_task_turn(self, named: re.Match, messages: list[dict]) -> Turn:
        """The turn of the agent script `named` on the task its model name names. Its own turns
        are the assistant messages after the ones tau2 put there first: the orchestrator's
        greeting, or the assistant messages of the task's message history."""
        task = self.scripts.by_id[(named["domain"], named["task"])]
        history = (task.initial_state.message_history or []) if task.initial_state else []
        before = sum(1 for m in history if m.role == "assistant") if history else 1
        done = sum(1 for m in messages if m["role"] == "assistant") - before
        turns = self.scripts.agent_turns(named["script"], task, False, named["domain"])
        return turns[min(done, len(turns) - 1)]

    def _completion(self, model: str, turn: Turn) -> dict:
        n = next(self._ids)
        message: dict = {"role": "assistant", "content": turn.text}
        if turn.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for i, (name, arguments) in enumerate(turn.calls)
            ]
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if turn.calls else "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


def main(server_class: type[ScriptedLLM] = ScriptedLLM, doc: str = __doc__) -> None:
    """Serve `server_class` in the foreground (`python -m helpers.<module> --port N`)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-path")
    # SGLang's other launch arguments (--tp, --served-model-name, ...) mean nothing here
    args, _ = parser.parse_known_args()
    config = os.path.join(args.model_path or "", "config.json")
    script = json.load(open(config)).get(CHECKPOINT_SCRIPT_KEY) if os.path.isfile(config) else None
    server = server_class(port=args.port, host=args.host, **({"script": script} if script else {}))
    print(f"serving on {server.start()}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
