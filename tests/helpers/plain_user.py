"""A user simulator that needs no task script: it asks for help once, then ends the chat.

The scripted user (helpers/scripted_llm.py) finds its task from the <scenario> in its prompt,
so that the scripted agent can replay the task's gold actions; several of tau2's mock tasks
share one scenario, and it refuses those (HTTP 400). When the agent is a real policy (the
tiny Qwen behind AReaL's proxy in the training tests) the user needs no script: this one
opens with OPENING and answers the agent's next message with tau2's ###STOP###, whatever the
task, including tasks whose message history already holds earlier user turns.

    python -m helpers.plain_user --port 8000   # tests/ on PYTHONPATH; serves until killed

Model names that do not start with "user" still reach the scripted agents.
"""

from __future__ import annotations

import json

from helpers import scripted_llm
from helpers.scripted_llm import STOP, EndpointDown, EndpointUnavailable, ScriptedLLM, Turn

OPENING = "Hello, I need some help with my tasks, please."


class PlainUserLLM(ScriptedLLM):
    """Failures on demand, each an HTTP 500 that the client's retries of that request (the
    same messages, numbered by the OpenAI SDK) get too, so its episode fails after them:

    - `fail_openings = N`: the next N opening requests fail;
    - `fail_every = K`: from the `first_failure`-th distinct request on, every K-th fails
      (K = 10: 10% of the requests).

    `failed` counts the requests failed (one per failed episode), `distinct` the requests,
    retries not counted, and `failed_retries` the retries of failed requests.

    `going_down = True`: every request answers HTTP 503 (what a server shutting down says),
    counted in `refused`, until the test stops the server."""

    fail_openings = 0
    fail_every = 0
    first_failure = 1
    going_down = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed = self.distinct = self.failed_retries = self.refused = 0
        self._failing: set[str] = set()  # the failed requests' messages, which retries repeat

    def _user_turn(self, messages: list[dict], retry: int = 0) -> Turn:
        # tau2 flips roles for the simulator: its own earlier turns arrive as "assistant";
        # turns from a task's message history never carry OPENING.
        opened = any(
            m["role"] == "assistant" and OPENING in (m.get("content") or "") for m in messages
        )
        if self.going_down:
            self.refused += 1
            raise EndpointUnavailable
        key = json.dumps(messages, sort_keys=True)
        if retry and key in self._failing:
            self.failed_retries += 1
            raise EndpointDown
        if not retry:  # another episode may send the same messages: a request of its own
            self.distinct += 1
            if self._fails(opened):
                self.failed += 1
                self._failing.add(key)
                raise EndpointDown
        return Turn(text=f"Thanks, that is all. {STOP}" if opened else OPENING)

    def _fails(self, opened: bool) -> bool:
        if not opened and self.fail_openings > 0:
            self.fail_openings -= 1
            return True
        n = self.distinct - self.first_failure
        return self.fail_every > 0 and n >= 0 and n % self.fail_every == 0


def main() -> None:
    scripted_llm.main(PlainUserLLM, __doc__)


if __name__ == "__main__":
    main()
