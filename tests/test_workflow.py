"""The τ² workflow end to end: real tau2 environments, orchestrator and evaluator; the only
stand-in is the scripted OpenAI-compatible server (tests/helpers/scripted_llm.py) playing the LLMs."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading

import pytest
from helpers.scripted_llm import SLOW_SECONDS

from tau2train.rollout.chat import Completion, EpisodeCancelled, Outage
from tau2train.rollout.episode import UnknownTask, find_task
from tau2train.rollout.group_filter import GroupFilter
from tau2train.rollout.rewards import completion_rewards
from tau2train.rollout.workflow import EpisodeDiscarded, Tau2AgentWorkflow
from tau2train.schemas import REWARD_TYPES, EnvConfig, tau2_reward


def workflow(llm, model="gold", domain="airline", dump_dir=None, timeout=60.0, reward=None, **env):
    env = {"user_llm_base_url": llm.base_url, "user_llm": "user", **env}
    econfig = EnvConfig(domain=domain, **env)
    return Tau2AgentWorkflow(
        econfig=econfig, timeout=timeout, dump_dir=dump_dir, agent_model=model,
        max_concurrent_episodes=32, reward=reward,
    )


def penalty(format_penalty: float):
    """reward=tau2 with another reward.format_penalty."""
    spec = tau2_reward()
    spec.format_penalty = format_penalty
    return spec


def run(wf, task_id, split, llm):
    return asyncio.run(wf.run({"task_id": task_id, "split": split}, base_url=llm.base_url, api_key="k"))


def play(wf, task_id, split, llm):
    return asyncio.run(wf.play({"task_id": task_id, "split": split}, llm.base_url, "k"))


@pytest.mark.parametrize(
    "domain,split,task_id",
    [
        ("airline", "train", "7"),  # writes, then must tell the user what it did
        ("airline", "train", "14"),
        ("airline", "test", "18"),
        ("retail", "train", "2"),
        ("retail", "test", "32"),
        ("retail", "test", "9"),
    ],
)
def test_gold_replay_earns_full_reward_on_the_last_completion(llm, domain, split, task_id):
    rewards = run(workflow(llm, domain=domain), task_id, split, llm)
    assert isinstance(rewards, dict) and rewards
    assert all(type(r) is float for r in rewards.values())  # AReaL rejects other types
    *earlier, last = rewards.values()
    assert last == 1.0
    assert earlier == [0.0] * len(earlier)


@pytest.mark.parametrize("domain,split,task_id", [("airline", "train", "7"), ("retail", "train", "0")])
def test_a_wrong_action_sequence_earns_zero(llm, domain, split, task_id):
    episode = play(workflow(llm, "wrong", domain=domain), task_id, split, llm)
    assert episode.info.reward == 0.0
    assert episode.info.reward_info["db_check"]["db_match"] is False
    assert list(episode.info.completion_rewards.values())[-1] == 0.0


def test_malformed_completions_get_the_penalty_and_only_they(llm):
    episode = play(workflow(llm, "malformed", reward=penalty(0.25)), "7", "train", llm)
    rewards, problems = episode.info.completion_rewards, episode.info.format_problems
    ids = list(rewards)
    # The script's first three completions: unknown tool, non-JSON arguments, missing argument.
    assert list(problems) == ids[:3]
    assert "unknown tool 'no_such_tool'" in problems[ids[0]]
    assert "not a JSON object" in problems[ids[1]]
    assert "do not fit its schema" in problems[ids[2]]
    assert [rewards[i] for i in ids[:3]] == [-0.25] * 3
    assert [rewards[i] for i in ids[3:-1]] == [0.0] * (len(ids) - 4)
    # The malformed calls changed nothing, so the gold actions after them still succeed.
    assert rewards[ids[-1]] == 1.0
    assert episode.info.termination_reason == "user_stop"


UNPARSEABLE_CALLS = {
    "unknown tool": '<tool_call>\n{"name": "no_such_tool", "arguments": {}}\n</tool_call>',
    "not JSON": '<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": }\n</tool_call>',
    "after some text": 'Let me look.\n<tool_call>\n{"name": "no_such_tool", "arguments": {}}\n</tool_call>',
}


def through_areals_parser(text: str, tools) -> tuple:
    """The chat completion AReaL's proxy answers for the policy's `text` (its tool-call parser,
    SGLang's qwen25 detector, as conf/config.yaml sets), judged by tau2train."""
    from areal.experimental.openai.tool_call_parser import process_tool_calls
    from openai.types.chat import ChatCompletion

    from tau2train.rollout.chat import to_tau2_message

    schemas = [tool.openai_schema for tool in tools]
    calls, content, finish = process_tool_calls(text, schemas, "qwen25", "qwen3", "stop")
    message = {"role": "assistant", "content": content, "tool_calls": [c.model_dump() for c in calls or []] or None}
    response = ChatCompletion(
        id="c1", created=0, model="policy", object="chat.completion",
        choices=[{"index": 0, "finish_reason": finish, "message": message}],
    )
    return to_tau2_message(response, tools)


@pytest.mark.parametrize("case", sorted(UNPARSEABLE_CALLS))
def test_a_tool_call_areals_parser_drops_is_penalised(case):
    from tau2.registry import registry

    tools = registry.get_env_constructor("airline")().get_tools()
    message, problem = through_areals_parser(UNPARSEABLE_CALLS[case], tools)
    assert not message.tool_calls  # SGLang's parser dropped the call ...
    assert problem and "could not parse" in problem  # ... and the completion is still malformed
    # a call that parses is judged on its own merits
    good = '<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}\n</tool_call>'
    message, problem = through_areals_parser(good, tools)
    assert [c.name for c in message.tool_calls] == ["get_user_details"] and problem is None


def test_the_penalty_knob_really_changes_the_rewards(llm):
    episode = play(workflow(llm, "malformed", reward=penalty(0.0)), "7", "train", llm)
    assert min(episode.info.completion_rewards.values()) == 0.0
    assert len(episode.info.format_problems) == 3


def test_an_empty_message_is_penalised_and_ends_the_episode_as_tau2_does(llm):
    episode = play(workflow(llm, "empty"), "7", "train", llm)
    assert episode.info.termination_reason == "agent_error"
    assert list(episode.info.completion_rewards.values()) == [-0.1]
    assert "empty message" in next(iter(episode.info.format_problems.values()))
    assert episode.discard_reason is None  # the agent's own fault: a training signal


def test_reward_basis_override_scores_on_fewer_checks(llm):
    # The "wrong" script skips the last (writing) action but still tells the user what the
    # task requires: it fails on DB and passes on COMMUNICATE.
    task = find_task("airline", "train", "14")
    assert task.evaluation_criteria.communicate_info
    full = play(workflow(llm, "wrong"), "14", "train", llm)
    comm_only = play(workflow(llm, "wrong", reward_basis=["COMMUNICATE"]), "14", "train", llm)
    assert full.info.reward == 0.0
    assert comm_only.info.reward == 1.0
    assert comm_only.info.reward_info["reward_basis"] == ["COMMUNICATE"]


def test_solo_mode_plays_without_a_user_simulator(llm):
    wf = workflow(llm, domain="mock", solo_mode=True, user_llm_base_url=None)
    before = llm.requests["user"]
    episode = play(wf, "update_task_1", "all", llm)
    assert episode.info.reward == 1.0
    assert episode.info.termination_reason == "agent_stop"
    assert llm.requests["user"] == before
    assert episode.info.user_latencies == []


def test_the_think_tool_is_answered_without_touching_the_environment(llm):
    episode = play(workflow(llm, "thinker", add_thinking_tool=True), "7", "train", llm)
    assert episode.info.reward == 1.0
    assert episode.info.format_problems == {}
    calls = [c["name"] for m in episode.info.messages for c in (m.get("tool_calls") or [])]
    assert "think" not in calls
    assert not any(m.get("error") for m in episode.info.messages)


def test_an_episode_over_its_time_limit_raises_so_areal_discards_it(llm):
    """The agent's endpoint takes the request and never answers: the time limit cuts the call
    itself (TimeoutError, which AReaL discards), rather than the episode waiting on it."""
    wf = workflow(llm, "slow", timeout=1.0)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        outcome: dict = {}

        def episode():
            try:
                outcome["rewards"] = asyncio.run(wf.run({"task_id": "7", "split": "train"}, base_url=url, api_key="k"))
            except BaseException as error:  # noqa: BLE001 - the test reads it
                outcome["error"] = error

        thread = threading.Thread(target=episode, daemon=True)
        thread.start()
        thread.join(SLOW_SECONDS)  # a bound, so nothing hangs: the limit is 1 s
        assert not thread.is_alive(), "the time limit did not stop an agent call that never returns"
    assert isinstance(outcome.get("error"), TimeoutError), outcome


def spy_on_outage_waits(monkeypatch) -> list[bool]:
    """What each chat's waits for an endpoint that is down answered (True: try again; False: give up)."""
    answered: list[bool] = []
    wait = Outage.wait

    def recorded(self, *args, **kwargs):
        answered.append(wait(self, *args, **kwargs))
        return answered[-1]

    monkeypatch.setattr(Outage, "wait", recorded)
    return answered


def test_a_dead_user_simulator_is_retried_then_recorded_and_discarded(llm, tmp_path, monkeypatch):
    """Nothing listening: retried, waited for past econfig.user_llm_outage_s, then the episode
    is recorded as the user simulator's failure and discarded."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    wf = workflow(llm, dump_dir=str(tmp_path), user_llm_base_url=dead, user_llm_max_retries=1, user_llm_outage_s=1.0)
    waits_answered = spy_on_outage_waits(monkeypatch)
    with pytest.raises(EpisodeDiscarded, match="user LLM at .* failed"):
        run(wf, "7", "train", llm)
    # waited for and retried while within the limit, then given up (the wait answered False)
    assert len(waits_answered) >= 2 and all(waits_answered[:-1]) and waits_answered[-1] is False
    [record] = tmp_path.rglob("*.json")
    info = json.loads(record.read_text())
    assert (info["termination_reason"], info["failure"]) == ("user_error", "user_sim")
    assert "APIConnectionError" in info["error"]


def test_an_erroring_user_simulator_is_retried_with_backoff(llm, tmp_path):
    """HTTP 500: the server answered, with an error; after the client's retries the episode
    fails, recorded as the user simulator's failure."""
    wf = workflow(llm, dump_dir=str(tmp_path), user_llm_max_retries=2)
    wf.econfig.user_llm = "user-error"
    before = llm.requests["user-error"]
    with pytest.raises(EpisodeDiscarded):
        run(wf, "7", "train", llm)
    assert llm.requests["user-error"] - before == 3  # first try + 2 retries
    [record] = tmp_path.rglob("*.json")
    assert json.loads(record.read_text())["failure"] == "user_sim"


def test_an_unavailable_user_simulator_is_waited_for_until_the_outage_limit(llm, tmp_path, monkeypatch):
    """HTTP 503 (restarting, overloaded): the episode waits and retries for
    econfig.user_llm_outage_s and as long again (at most WATCH_GRACE_S: a training run's watch
    stops the run first), then fails as the user simulator's failure."""
    wf = workflow(llm, dump_dir=str(tmp_path), user_llm_max_retries=0, user_llm_outage_s=2.5)
    wf.econfig.user_llm = "user-down"
    before = llm.requests["user-down"]
    waits_answered = spy_on_outage_waits(monkeypatch)
    with pytest.raises(EpisodeDiscarded):
        run(wf, "7", "train", llm)
    # tries at 0 s, then after waits of 1, 2 and 2 s (the rest of give_up_after(2.5) = 5 s); the
    # fourth wait finds the 5 s used up and gives up
    assert waits_answered == [True, True, True, False]
    assert llm.requests["user-down"] - before == 4
    [record] = tmp_path.rglob("*.json")
    assert json.loads(record.read_text())["failure"] == "user_sim"


def test_agent_endpoint_errors_propagate(llm):
    with pytest.raises(Exception, match="agent LLM at .* failed: InternalServerError"):
        run(workflow(llm, "broken"), "7", "train", llm)


def test_unknown_task_or_split_is_a_clear_error(llm):
    with pytest.raises(UnknownTask, match=r"task id '999' is not in split 'train' of tau2's airline domain \(30 tasks"):
        run(workflow(llm), "999", "train", llm)
    with pytest.raises(UnknownTask, match=r"no task split 'nope'; valid: .*test.*train"):
        run(workflow(llm), "7", "nope", llm)


def test_trajectories_are_written_whole_as_json_and_text(llm, tmp_path):
    play(workflow(llm, dump_dir=str(tmp_path)), "7", "train", llm)
    [record] = tmp_path.rglob("*.json")
    [text] = tmp_path.rglob("*.txt")
    assert record.parent == tmp_path / "train" / "7"
    assert sorted(p.name for p in record.parent.iterdir()) == sorted([record.name, text.name])
    info = json.loads(record.read_text())
    assert info["task_id"] == "7" and info["reward"] == 1.0
    assert info["reward_info"]["reward_breakdown"] == {"DB": 1.0, "COMMUNICATE": 1.0}
    assert len(info["agent_latencies"]) == len(info["completion_rewards"])
    assert info["user_latencies"] and info["error"] is None
    assert "Reward: 1.0" in text.read_text()


def test_concurrent_episodes_keep_their_own_state(llm):
    wf = workflow(llm, domain="retail")
    tasks = ["2", "3", "4", "16", "19", "21", "24", "28"] * 2

    async def all_of_them():
        return await asyncio.gather(
            *(wf.run({"task_id": t, "split": "train"}, base_url=llm.base_url, api_key="k") for t in tasks)
        )

    results = asyncio.run(all_of_them())
    assert [list(r.values())[-1] for r in results] == [1.0] * len(tasks)
    ids = [i for r in results for i in r]
    assert len(ids) == len(set(ids))


def test_reward_rule_adds_the_episode_reward_to_the_last_completion():
    completions = [Completion("a", 0.1), Completion("b", 0.1, "bad"), Completion("c", 0.1)]
    assert completion_rewards(completions, 1.0, 0.1) == {"a": 0.0, "b": -0.1, "c": 1.0}
    last_bad = [Completion("a", 0.1), Completion("b", 0.1, "bad")]
    assert completion_rewards(last_bad, 0.0, 0.5) == {"a": 0.0, "b": -0.5}


def test_group_filter_threshold_is_configurable():
    assert GroupFilter()({"rewards": [1.0, 1.0, 0.8, 1.0]}) is True  # mean 0.95: kept
    assert GroupFilter()({"rewards": [1.0, 1.0, 1.0, 1.0]}) is False
    assert GroupFilter(max_mean_reward=0.5)({"rewards": [1.0, 0.0, 1.0]}) is False
    assert GroupFilter(min_mean_reward=0.05)({"rewards": [0.0, 0.0]}) is False
    assert GroupFilter(max_mean_reward=None)({"rewards": [1.0]}) is True


def test_a_group_left_with_fewer_than_min_episodes_is_dropped_whatever_its_rewards():
    """Inside AReaL's rollout an episode that failed records no reward (it was dropped alone):
    a group with fewer than group_filter.min_episodes episodes left is dropped, one with
    enough is judged by its episodes' rewards."""
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext

    from tau2train.rollout.group_filter import record_episode_reward

    previous = workflow_context.get()
    try:
        verdicts = []
        for task_id, left, min_episodes in ((11, [0.0], 2), (12, [0.0, 1.0], 2), (13, [0.0], 1), (14, [1.0], 1)):
            workflow_context.set(WorkflowContext(is_eval=False, task_id=task_id))
            for reward in left:
                record_episode_reward(reward)
            verdicts.append(GroupFilter(min_episodes=min_episodes)({"rewards": [0.0]}))
    finally:
        workflow_context.set(previous)
    assert verdicts == [False, True, True, False]  # the last: 1 episode left, and it solved the task


def discounted(completion_rewards: list[float], turn_discount: float = 1.0) -> list[float]:
    """The rows AReaL's export makes of an episode's completion rewards (reward[i] +=
    turn_discount * reward[i+1])."""
    rows = list(completion_rewards)
    for i in range(len(rows) - 2, -1, -1):
        rows[i] += turn_discount * rows[i + 1]
    return rows


def test_group_filter_judges_a_group_by_its_episodes_rewards_under_areal(llm):
    """Inside AReaL's rollout (its workflow context holds the task id while the group's
    episodes run and when the filter is called), the filter averages the episodes' rewards,
    not the per-completion rows AReaL hands it."""
    import torch
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext

    wf = workflow(llm, "malformed", reward=penalty(0.25))

    async def group(task_id: int, is_eval: bool = False) -> dict:
        workflow_context.set(WorkflowContext(is_eval=is_eval, task_id=task_id))
        data = {"task_id": "7", "split": "train"}
        results = await asyncio.gather(*[wf.run(data, base_url=llm.base_url, api_key="k") for _ in range(2)])
        rows = [r for rewards in results for r in discounted(list(rewards.values()))]
        return {"rewards": torch.tensor(rows)}

    async def filtered(task_id: int, is_eval: bool = False) -> tuple[float, bool]:
        rows = await group(task_id, is_eval)
        return float(rows["rewards"].mean()), GroupFilter()(rows)

    # both episodes solve the task (reward 1) after three penalised calls: the rows' mean is
    # well under the 0.95 threshold, the episodes' mean is 1, so the group is dropped
    row_mean, kept = asyncio.run(filtered(1))
    assert row_mean < 0.95 and kept is False
    # an evaluation task records nothing, so the filter falls back to the rows
    row_mean, kept = asyncio.run(filtered(2, is_eval=True))
    assert row_mean < 0.95 and kept is True


def test_a_group_baseline_measures_each_completion_against_its_groups_episodes(llm):
    """group_filter.baseline=group: one gold episode (reward 1) and two wrong ones (0) of one
    task, played under one AReaL task id; every row AReaL trains on (a completion's discounted
    reward) comes out minus 1/3, the mean of the three episodes' rewards, not of the rows. A
    group the filter drops, or a filter without the baseline, leaves the rows as they were."""
    import torch
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext

    async def group(task_id: int, keep: GroupFilter) -> tuple[list[float], dict, bool]:
        # the filter runs in the rollout's context, as AReaL calls it
        workflow_context.set(WorkflowContext(is_eval=False, task_id=task_id))
        data = {"task_id": "7", "split": "train"}
        played = [workflow(llm, model).run(data, base_url=llm.base_url, api_key="k")
                  for model in ("gold", "wrong", "wrong")]
        rows = [r for rewards in await asyncio.gather(*played) for r in discounted(list(rewards.values()))]
        trajectory = {"rewards": torch.tensor(rows)}
        return rows, trajectory, keep(trajectory)

    previous = workflow_context.get()
    try:
        rows, kept, verdict = asyncio.run(group(21, GroupFilter(max_mean_reward=None, baseline="group")))
        plain_rows, plain, plain_verdict = asyncio.run(group(22, GroupFilter(max_mean_reward=None)))
        _, dropped, dropped_verdict = asyncio.run(group(23, GroupFilter(max_mean_reward=0.2, baseline="group")))
    finally:
        workflow_context.set(previous)
    assert (verdict, plain_verdict, dropped_verdict) == (True, True, False)
    assert max(rows) == 1.0 and min(rows) == 0.0 and len(rows) > 3  # the rows' mean is not 1/3
    assert kept["rewards"].tolist() == pytest.approx([r - 1 / 3 for r in rows])
    assert plain["rewards"].tolist() == pytest.approx(plain_rows)
    assert dropped["rewards"].tolist() == pytest.approx(rows)


def test_validation_episodes_give_each_domain_its_pass1_on_areals_stats_tracker(llm):
    """Under AReaL's workflow context, each episode's reward and success go to AReaL's stats
    tracker under its domain, in the scope AReaL's own reward uses: averaged per step, the
    validation pass^1 of each domain (one wandb curve per domain)."""
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext
    from areal.utils import stats_tracker

    async def episodes(is_eval: bool) -> None:
        workflow_context.set(WorkflowContext(is_eval=is_eval, task_id=None if is_eval else 5))
        for script, domain, task in (("gold", "airline", "7"), ("wrong", "airline", "7"),
                                     ("gold", "retail", "0")):
            await workflow(llm, script, domain).run({"task_id": task, "split": "train"},
                                                    base_url=llm.base_url, api_key="k")

    stats_tracker.get("eval-rollout").export(reset=True)
    stats_tracker.get("rollout").export(reset=True)
    asyncio.run(episodes(is_eval=True))
    validation = stats_tracker.get("eval-rollout").export(reset=True)
    assert validation["eval-rollout/airline/pass^1"] == 0.5  # gold solves task 7, wrong does not
    assert validation["eval-rollout/retail/pass^1"] == 1.0
    assert validation["eval-rollout/airline/reward"] == 0.5
    assert stats_tracker.get("rollout").export(reset=True) == {}
    asyncio.run(episodes(is_eval=False))  # training episodes: AReaL's rollout/ scope
    assert stats_tracker.get("rollout").export(reset=True)["rollout/retail/pass^1"] == 1.0


def test_reward_type_names_match_tau2():
    from tau2.data_model.tasks import RewardType

    assert set(REWARD_TYPES) == {r.value for r in RewardType}


def test_cancelled_chat_stops_before_calling_the_endpoint(llm):
    import threading

    from openai import AsyncOpenAI

    from tau2train.rollout.chat import Chat

    loop = asyncio.new_event_loop()
    cancelled = threading.Event()
    cancelled.set()
    chat = Chat(AsyncOpenAI(base_url=llm.base_url, api_key="k"), loop, "gold", cancelled=cancelled)
    with pytest.raises(EpisodeCancelled):
        chat([], None)
    loop.close()
    assert chat.completions == []


def test_an_episode_stopped_while_it_waits_prints_no_unretrieved_error(llm, monkeypatch):
    """The run ends (AReaL cancels the episode's task) while the episode waits for a user
    simulator that is down: its thread stops with EpisodeCancelled, which nobody awaits any
    more, and asyncio must not report it as "Future exception was never retrieved" (printed
    with a traceback per episode in flight, on every Ctrl-C, SIGTERM or outage stop)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    wf = workflow(llm, user_llm_base_url=dead, user_llm_max_retries=0, user_llm_outage_s=60)
    episodes, waiting, reported = [], threading.Event(), []
    within, wait = wf.within_time_limit, Outage.wait
    monkeypatch.setattr(wf, "within_time_limit", lambda future, chat: episodes.append(future) or within(future, chat))
    monkeypatch.setattr(Outage, "wait", lambda self, *args: waiting.set() or wait(self, *args))

    async def stopped_while_waiting():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context["message"]))
        task = asyncio.ensure_future(wf.run({"task_id": "7", "split": "train"}, base_url=llm.base_url, api_key="k"))
        assert await asyncio.to_thread(waiting.wait, 60)  # the episode waits for the user simulator
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait(episodes, timeout=30)  # its thread has stopped (nothing retrieved)
        assert episodes[0].done() and not episodes[0].cancelled()
        episodes.clear()
        gc.collect()  # where asyncio reports a future whose error nobody retrieved

    asyncio.run(stopped_while_waiting())
    assert reported == []
