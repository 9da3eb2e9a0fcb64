"""The CPU inference server (tau2train/serving/cpu_sglang.py) with completions a test forces.

POST /tau2test/force with {"completions": [c, ...]} queues them; each later /generate takes the
next one instead of sampling. A string is tokenised (no special tokens) and followed by the
tokenizer's EOS (<|im_end|> for Qwen chat models); a list of ints is used as is. The tokens
are returned verbatim (cut at max_new_tokens) with the model's own teacher-forced
log-probabilities, so the trainer still sees the policy's real probabilities of them.
POST /tau2test/force with {"turns": [c0, c1, ...]} instead forces by the prompt, not by arrival
order (so episodes that fail or interleave leave the others' completions as they were): a
prompt whose text holds c0 k times gets c_k (the last once k runs past the list); a queued
completion still goes first.
POST /tau2test/force with {"episodes": [{"when": text, "scripts": [[a0, a1, ...], [b0, ...]]},
...]} makes the episodes of one prompt differ: the first rule whose `when` the prompt's text
holds applies (no `when`: every prompt); a prompt that holds a script's first completion k
times (k >= 1) gets that script's k-th completion (its last once k runs past it), and a prompt
that holds none of the rule's first completions is an episode's first turn: the n-th time
this very prompt comes, it gets the first completion of script n mod len(scripts). So the
episodes of a GRPO group (one task, one prompt, played together) follow different scripts,
whatever order they run in, provided no other group's episodes of the same prompt begin
between theirs. It goes after queued completions and before a turn script.

Test instrumentation (attributes, off unless set; helpers/cpu_rollout_worker.py sets them from
the environment): `generation_log`, a file that gets one JSON line per /generate answered
(the prompt, output tokens and their log-probabilities, finish reason, weight version) and per
weight update; `keep_weights`, a folder that keeps each checkpoint /update_weights_from_disk
loads (hard links to AReaL's files, which AReaL deletes once the server has loaded them), under
its own folder name (weight_update_v<version>).

    python -m helpers.cpu_sglang --model-path DIR --port 30000   # tests/ on PYTHONPATH
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import threading
from typing import Any

from aiohttp import web

from tau2train.serving import cpu_sglang
from tau2train.serving.cpu_sglang import BadRequest, Generation, SamplingParams  # noqa: F401 (re-exported)


class CPUSGLangServer(cpu_sglang.CPUSGLangServer):
    """The package's server plus /tau2test/force."""

    generation_log: str | None = None
    keep_weights: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._forced: collections.deque[str | list[int]] = collections.deque()
        self._turns: list[str] = []
        self._episodes: list[dict[str, Any]] = []
        # (rule, first-turn prompt) -> the episodes begun with it, for {"episodes": ...}
        self._begun: collections.Counter[tuple[int, tuple[int, ...]]] = collections.Counter()
        self._lock = threading.Lock()  # /generate asks on the HTTP thread, chat on the worker

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_post("/tau2test/force", self._force)
        app.middlewares.append(self._traced)
        return app

    def _forced_for(self, prompt: list[int]) -> list[int] | None:
        """The completion forced for this prompt: the next queued one, else the episode
        rules', else the turn script's."""
        if self._forced:
            return self.policy.encode_forced(self._forced.popleft())
        if not self._turns and not self._episodes:
            return None
        text = self.policy.tokenizer.decode(prompt)
        if self._episodes:
            completion = self._episode_turn(text, prompt)
            if completion is not None:
                return self.policy.encode_forced(completion)
        if not self._turns:
            return None
        said = text.count(self._turns[0])
        return self.policy.encode_forced(self._turns[min(said, len(self._turns) - 1)])

    def _episode_turn(self, text: str, prompt: list[int]) -> str | None:
        """What the first rule (of {"episodes": ...}) that applies to this prompt forces."""
        for index, rule in enumerate(self._episodes):
            if rule.get("when", "") not in text:
                continue
            scripts = rule["scripts"]
            said = [text.count(script[0]) for script in scripts]
            if max(said) > 0:
                script = scripts[said.index(max(said))]
                return script[min(max(said), len(script) - 1)]
            with self._lock:  # an episode's first turn: the next script for this prompt
                begun = self._begun[(index, tuple(prompt))]
                self._begun[(index, tuple(prompt))] += 1
            return scripts[begun % len(scripts)][0]
        return None

    async def _force(self, request: web.Request) -> web.Response:
        body = await request.json()
        completions, turns = body.get("completions", []), body.get("turns", [])
        episodes = body.get("episodes", [])
        if not isinstance(completions, list) or not all(isinstance(c, (str, list)) for c in completions):
            return web.json_response(
                {"error": {"message": "completions: a list of strings or token-id lists"}}, status=400
            )
        if not isinstance(turns, list) or not all(isinstance(c, str) for c in turns):
            return web.json_response({"error": {"message": "turns: a list of strings"}}, status=400)
        if not valid_episode_rules(episodes):
            return web.json_response(
                {"error": {"message": 'episodes: a list of {"when": str, "scripts": [[str, ...], ...]}'}},
                status=400,
            )
        self.force(completions, turns, episodes)
        answer = {"queued": len(self._forced), "turns": len(self._turns)}
        if episodes:
            answer["episodes"] = len(self._episodes)
        return web.json_response(answer)

    def force(
        self, completions: list[str | list[int]], turns: list[str], episodes: list[dict] | None = None
    ) -> None:
        """Queue `completions`; a non-empty `turns` replaces the turn script, a non-empty
        `episodes` the episode rules."""
        self._forced.extend(completions)
        if turns:
            self._turns = list(turns)
        if episodes:
            self._episodes = [dict(rule) for rule in episodes]
            self._begun.clear()

    # -- test instrumentation ----------------------------------------------------------------
    @web.middleware
    async def _traced(self, request: web.Request, handler) -> web.StreamResponse:
        """Keep what a weight update loads, and log each /generate and update, when asked."""
        kept = None
        if request.path == "/update_weights_from_disk" and self.keep_weights:
            kept = keep_checkpoint((await request.json()).get("model_path"), self.keep_weights)
        response = await handler(request)
        if self.generation_log and request.path in ("/generate", "/update_weights_from_disk"):
            body = await request.json()
            if request.path == "/update_weights_from_disk":
                record = {"kind": "update", "model_path": body.get("model_path"), "kept": kept,
                          "weight_version": self.weight_version, "status": response.status}
            elif response.status == 200:
                answer = json.loads(response.text)
                meta = answer["meta_info"]
                record = {
                    "kind": "generation",
                    "input_ids": body.get("input_ids"),
                    "output_ids": answer["output_ids"],
                    "output_logprobs": [lp for lp, _, _ in meta.get("output_token_logprobs") or []],
                    "finish_reason": meta["finish_reason"],
                    "weight_version": meta["weight_version"],
                    "temperature": (body.get("sampling_params") or {}).get("temperature"),
                }
            else:
                record = {"kind": "generation", "status": response.status, "input_ids": body.get("input_ids")}
            append_line(self.generation_log, record)
        return response


def append_line(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def valid_episode_rules(episodes: Any) -> bool:
    return isinstance(episodes, list) and all(
        isinstance(rule, dict)
        and isinstance(rule.get("when", ""), str)
        and isinstance(rule.get("scripts"), list)
        and rule["scripts"]
        and all(isinstance(s, list) and s and all(isinstance(c, str) for c in s) for s in rule["scripts"])
        for rule in episodes
    )


def keep_checkpoint(path: str | None, keep: str) -> str | None:
    """Hard-link (copy, across file systems) the checkpoint folder `path` into `keep`."""
    if not path or not os.path.isdir(path):
        return None
    target = os.path.join(keep, os.path.basename(os.path.normpath(path)))

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(path, target, copy_function=link, dirs_exist_ok=True)
    return target


def main(argv: list[str] | None = None) -> None:
    cpu_sglang.main(argv, CPUSGLangServer)


if __name__ == "__main__":
    main()
