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

    python -m helpers.cpu_sglang --model-path DIR --port 30000   # tests/ on PYTHONPATH
"""

from __future__ import annotations

import collections

from aiohttp import web

from tau2train.serving import cpu_sglang
from tau2train.serving.cpu_sglang import BadRequest, Generation, SamplingParams  # noqa: F401 (re-exported)


class CPUSGLangServer(cpu_sglang.CPUSGLangServer):
    """The package's server plus /tau2test/force."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._forced: collections.deque[str | list[int]] = collections.deque()
        self._turns: list[str] = []

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_post("/tau2test/force", self._force)
        return app

    def _forced_for(self, prompt: list[int]) -> list[int] | None:
        """The completion forced for this prompt: the next queued one, else the turn script's."""
        if self._forced:
            return self.policy.encode_forced(self._forced.popleft())
        if not self._turns:
            return None
        said = self.policy.tokenizer.decode(prompt).count(self._turns[0])
        return self.policy.encode_forced(self._turns[min(said, len(self._turns) - 1)])

    async def _force(self, request: web.Request) -> web.Response:
        body = await request.json()
        completions, turns = body.get("completions", []), body.get("turns", [])
        if not isinstance(completions, list) or not all(isinstance(c, (str, list)) for c in completions):
            return web.json_response(
                {"error": {"message": "completions: a list of strings or token-id lists"}}, status=400
            )
        if not isinstance(turns, list) or not all(isinstance(c, str) for c in turns):
            return web.json_response({"error": {"message": "turns: a list of strings"}}, status=400)
        self.force(completions, turns)
        return web.json_response({"queued": len(self._forced), "turns": len(self._turns)})

    def force(self, completions: list[str | list[int]], turns: list[str]) -> None:
        """Queue `completions`; a non-empty `turns` replaces the turn script."""
        self._forced.extend(completions)
        if turns:
            self._turns = list(turns)


def main(argv: list[str] | None = None) -> None:
    cpu_sglang.main(argv, CPUSGLangServer)


if __name__ == "__main__":
    main()
