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

from helpers import scripted_llm
from helpers.scripted_llm import STOP, EndpointDown, ScriptedLLM, Turn

OPENING = "Hello, I need some help with my tasks, please."


class PlainUserLLM(ScriptedLLM):
    """`fail_openings = N`: the next N opening requests answer HTTP 500 (a user simulator
    failing after its retries when the client makes none); `failed` counts those it failed."""

    fail_openings = 0
    failed = 0

    def _user_turn(self, messages: list[dict]) -> Turn:
        # tau2 flips roles for the simulator: its own earlier turns arrive as "assistant";
        # turns from a task's message history never carry OPENING.
        opened = any(
            m["role"] == "assistant" and OPENING in (m.get("content") or "") for m in messages
        )
        if not opened and self.fail_openings > 0:
            self.fail_openings -= 1
            self.failed += 1
            raise EndpointDown
        return Turn(text=f"Thanks, that is all. {STOP}" if opened else OPENING)


def main() -> None:
    scripted_llm.main(PlainUserLLM, __doc__)


if __name__ == "__main__":
    main()
