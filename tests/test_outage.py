"""A user simulator that stops answering: its episodes wait and retry (their time limit paused),
a server that answers with an error fails its episode at once, and training stops with one
message naming the URL once the outage outlasts econfig.user_llm_outage_s. Real HTTP servers
(the scripted user simulator), stopped and restarted on the same port."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from helpers.cli import wait_for
from helpers.plain_user import OPENING, PlainUserLLM
from helpers.served import served
from openai import AsyncOpenAI
from tau2.data_model.message import UserMessage

from tau2train.config.checked import Endpoint
from tau2train.launch import outage
from tau2train.launch.outage import (
    PROBE_EVERY_S,
    PROBE_TIMEOUT_S,
    UserSimOutage,
    answers,
    stop_on_user_sim_outage,
)
from tau2train.rollout.chat import WATCH_GRACE_S, Chat, LLMCallFailed, give_up_after
from tau2train.rollout.workflow import Tau2AgentWorkflow


@pytest.fixture
def loop():
    """An event loop in its own thread, as AReaL's rollout worker runs the episodes' calls."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def user_sim():
    yield from served(PlainUserLLM())


def user_chat(loop, url: str, outage_s: float, max_retries: int = 0) -> Chat:
    client = AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=max_retries, timeout=5.0)
    return Chat(client, loop, "user", role="user", outage_s=outage_s)


def ask(chat: Chat) -> dict:
    """One user-simulator call in a thread of its own, as an episode's; its outcome."""
    outcome: dict = {}

    def call():
        try:
            outcome["message"] = chat([UserMessage(role="user", content="Hi, how can I help?")])
        except Exception as error:  # noqa: BLE001 - the test reads it
            outcome["error"] = error

    outcome["thread"] = threading.Thread(target=call, daemon=True)
    outcome["thread"].start()
    return outcome


def spy_on_waits(chat: Chat, monkeypatch) -> list[bool]:
    """What each of `chat`'s waits for its endpoint answered (True: try again; False: give up)."""
    answered: list[bool] = []
    wait = chat.outage.wait

    def recorded(*args, **kwargs):
        answered.append(wait(*args, **kwargs))
        return answered[-1]

    monkeypatch.setattr(chat.outage, "wait", recorded)
    return answered


def test_a_call_waits_for_a_user_simulator_that_comes_back(loop, user_sim):
    url = user_sim.base_url
    user_sim.stop()
    chat = user_chat(loop, url, outage_s=120)
    outcome = ask(chat)
    wait_for(lambda: chat.outage.waits >= 2, "the call to retry a server that is down", 30)
    user_sim.start()  # the same port
    outcome["thread"].join(60)
    assert "error" not in outcome, outcome.get("error")
    assert OPENING in outcome["message"].content
    assert len(chat.completions) == 1
    assert chat.outage.since is None and chat.outage.waited >= 1.0  # the episode's clock paused


def test_past_the_limit_the_call_fails_naming_the_url(loop, user_sim, monkeypatch):
    url = user_sim.base_url
    user_sim.stop()
    chat = user_chat(loop, url, outage_s=1.5)
    waits_answered = spy_on_waits(chat, monkeypatch)
    outcome = ask(chat)
    outcome["thread"].join(30)  # a bound: the call gives up after give_up_after(1.5) = 3 s
    assert not outcome["thread"].is_alive(), "the call did not give up on a server that stays down"
    assert isinstance(outcome["error"], LLMCallFailed) and url in str(outcome["error"])
    # it waited and retried while the server was down, then gave up (wait answered False)
    assert give_up_after(1.5) == 3.0
    assert len(waits_answered) >= 2 and waits_answered[-1] is False and all(waits_answered[:-1])
    # its own account of the outage: the whole of give_up_after(1.5) (its monotonic clock)
    assert chat.outage.waited >= 3.0 and chat.outage.since is None


def test_a_training_runs_watch_stops_it_before_any_episode_gives_up():
    """Episodes outwait the limit by WATCH_GRACE_S, longer than the watch can take to see it
    (a probe interval and a probe's timeout), so an outage the run stops for fails none."""
    assert PROBE_EVERY_S + PROBE_TIMEOUT_S < WATCH_GRACE_S
    assert give_up_after(300) == 320 and give_up_after(60) == 80 and give_up_after(2) == 4


def test_an_error_answer_is_a_failure_not_an_outage(loop, user_sim):
    """HTTP 500 (the server answered): the episode fails after the client's retries, no waiting."""
    chat = user_chat(loop, user_sim.base_url, outage_s=120)
    chat.model = "broken"  # the scripted server answers 500 to this model
    outcome = ask(chat)
    outcome["thread"].join(30)
    assert isinstance(outcome["error"], LLMCallFailed) and "500" in str(outcome["error"])
    assert chat.outage.waits == 0 and chat.outage.waited == 0.0


def test_the_episode_time_limit_does_not_count_the_outage(loop):
    """An episode that has waited for its user simulator gets that time back."""
    workflow = Tau2AgentWorkflow(timeout=0.5, econfig={"domain": "mock", "solo_mode": True, "fast_env": False})
    chat = user_chat(loop, "http://127.0.0.1:9/v1", outage_s=120)
    chat.outage.since = time.monotonic()  # down from now on, for the whole test

    async def episode_longer_than_the_limit():
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(1.5, future.set_result, "finished")
        return await workflow.within_time_limit(future, chat)

    assert asyncio.run(episode_longer_than_the_limit()) == "finished"
    chat.outage.end()

    async def without_an_outage():
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(1.5, future.set_result, "finished")
        return await workflow.within_time_limit(future, None)

    with pytest.raises(TimeoutError):
        asyncio.run(without_an_outage())


def test_training_stops_with_the_url_once_the_outage_outlasts_the_limit(user_sim):
    url = user_sim.base_url
    with stop_on_user_sim_outage((Endpoint("econfig.user_llm_base_url", url),), limit_s=1.0):
        user_sim.stop()
        with pytest.raises(UserSimOutage) as stopped:
            threading.Event().wait(60)  # the main thread at work, as AReaL's trainer
    message = str(stopped.value)
    assert url in message and "econfig.user_llm_outage_s=1" in message
    assert "rerun the same command: it resumes from the last checkpoint" in message


def test_a_user_simulator_back_within_the_limit_stops_nothing(user_sim, monkeypatch):
    """The watch sees the server down, then back, and goes on probing past the time the limit
    would have run out from the first failed probe: no UserSimOutage (raised in this thread,
    the main one)."""
    url = user_sim.base_url
    probes: list[tuple[float, bool]] = []  # (time.monotonic(), answered) of each of the watch's probes

    def probed(probe_url: str) -> bool:
        probes.append((time.monotonic(), answers(probe_url)))
        return probes[-1][1]

    monkeypatch.setattr(outage, "answers", probed)

    def first_down() -> float | None:
        return next((at for at, up in probes if not up), None)

    def back_past_the_limit() -> bool:
        down = first_down()
        back = [at for at, up in probes if up and down is not None and at > down]
        return bool(back) and probes[-1][0] > down + 3.0 and probes[-1][1]

    try:
        with stop_on_user_sim_outage((Endpoint("econfig.user_llm_base_url", url),), limit_s=3.0):
            user_sim.stop()
            wait_for(first_down, "the watch to see the user simulator down", 30)
            user_sim.start()  # the outage: from the first failed probe to here, well under 3 s
            wait_for(back_past_the_limit, "the watch to see it back, and go on past the limit", 30)
            answered = [up for _, up in probes]
    except UserSimOutage as stopped:  # a KeyboardInterrupt: it would end the whole pytest session
        pytest.fail(f"the watch stopped the run although the user simulator came back: {stopped}")
    assert False in answered, "the watch never saw the user simulator down"
    last_down = len(answered) - 1 - answered[::-1].index(False)
    assert answered[last_down + 1:] and all(answered[last_down + 1:])  # seen back, and up since


@pytest.fixture
def fresh_rollout_stats(monkeypatch):
    """AReaL's stats trackers and the groups record_episode_end keeps are process-wide: what
    other tests recorded in this process (test_workflow's group filter, say) must not count."""
    from areal.utils import stats_tracker

    from tau2train.rollout import lost_episodes

    monkeypatch.setattr(stats_tracker, "TRACKERS", {"": stats_tracker.DistributedStatsTracker()})
    monkeypatch.setattr(lost_episodes, "GROUPS", type(lost_episodes.GROUPS)())


def test_each_step_reports_what_failures_outside_the_policy_cost(fresh_rollout_stats):
    """On AReaL's own stats tracker, in the scope of its rollout stats: three groups of 4 with
    group_filter.min_episodes=2. One loses an episode to the user simulator (dropped alone: the
    group trains on 3), one loses none, one loses 3 of 4 (1 left: dropped whole)."""
    from areal.infra import workflow_context
    from areal.utils import stats_tracker

    from tau2train.records.episode_failure import Failure
    from tau2train.rollout.lost_episodes import record_episode_end

    groups = ((101, [None, Failure.USER_SIM, None, None]), (102, [None] * 4),
              (103, [Failure.TIMEOUT, Failure.USER_SIM, Failure.EVALUATOR, None]))
    previous = workflow_context.get()
    try:
        for task_id, failures in groups:
            workflow_context.set(workflow_context.WorkflowContext(is_eval=False, task_id=task_id))
            for failure in failures:
                record_episode_end(failure, group_size=4, min_episodes=2)
        stats = stats_tracker.get(workflow_context.stat_scope()).export()
    finally:
        workflow_context.set(previous)
    ours = {k.split("tau2/", 1)[1]: v for k, v in stats.items() if "tau2/" in k and not k.endswith("__count")}
    assert ours == pytest.approx({
        "episodes_failed/user_sim": 2 / 12, "episodes_failed/timeout": 1 / 12, "episodes_failed/evaluator": 1 / 12,
        "groups_dropped_whole": 1 / 3, "episodes_lost": (1 + 0 + 4) / 12,
    })
    assert all(k.startswith("rollout/") for k in stats if "tau2/" in k)
