"""The rule-based user simulator for τ²'s mock domain (tau2train/user_sim/rule_based.py): every
mock task it plays, played through tau2train's own workflow against an agent double that
performs the task's gold actions (reward 1.0) or skips them (0.0); the task it leaves out,
named with its reason (checked here to hold); and `tau2train-user-sim user_sim=rule_based`,
the path a user takes, started, recorded, used by an episode and stopped."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers.cli import wait_for
from helpers.scripted_llm import QUESTION, ScriptedLLM, Scripts
from helpers.served import served

from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.rollout.workflow import Tau2AgentWorkflow
from tau2train.schemas import EnvConfig
from tau2train.user_sim import rule_based
from tau2train.user_sim.rule_based import (
    LEFT_OUT,
    MAX_REQUESTS,
    PLAYED,
    STOP,
    TRANSFER,
    RuleBasedUser,
    Said,
    coverage,
    next_turn,
)

TESTS = Path(__file__).resolve().parent
# The user's opening request per played task: plain words made from its scenario (task_2 of
# the two history tasks is named only in their earlier conversation, or in the scenario).
OPENINGS = {
    "create_task_1": "Please create a task called 'Important Meeting' for user_1.",
    "create_task_1_with_env_assertions": "Please create a task called 'Important Meeting' for user_1.",
    "update_task_1": "Please mark task_1 as completed.",
    "update_task_with_message_history": "Please mark task_2 as completed.",
    "update_task_with_initialization_data": "Please mark task_2 as completed.",
    "update_task_with_initialization_actions": "Please mark task_2 as completed.",
    "update_task_with_history_and_env_assertions": "Please mark task_2 as completed.",
    "impossible_task_1": "Please delete all my current tasks.",
}
# tau2 lists no gold actions for this task (it is scored on an env assertion only: task_2
# completed); the gold agent double performs what that assertion asks.
HISTORY_AND_ENV = "update_task_with_history_and_env_assertions"
MARK_TASK_2 = ("update_task_status", {"task_id": "task_2", "status": "completed"})
CREATE_MEETING = ("create_task", {"user_id": "user_1", "title": "Important Meeting"})
NL_EVAL = "create_task_1_nl_eval"
RECORD_NAME = "rule-based-user-mock.json"
DEADLINE_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHER_TEST = "test_tau2train_user_sim_serves_it_records_it_and_an_episode_uses_it"


@pytest.fixture(scope="module", autouse=True)
def launched(request, tmp_path_factory):
    """`tau2train-user-sim user_sim=rule_based` in the foreground, started before this module's
    other tests (when LAUNCHER_TEST is selected) so that its start (composing the config loads
    AReaL: 20-50 s on a busy machine) overlaps them; Ctrl-C'd by LAUNCHER_TEST, killed here if
    still running."""
    if not any(item.name == LAUNCHER_TEST for item in request.session.items):
        yield None
        return
    root = tmp_path_factory.mktemp("rule-based-user-sim")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tau2train.user_sim", "user_sim=rule_based", f"cluster.fileroot={root}",
         f"user_sim.port={port}", "user_sim.host=127.0.0.1"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    yield process, root / "user_sim" / RECORD_NAME, port
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def agent():
    """The scripted agent double: "<script>@mock/<task id>" plays that task's gold actions
    ("gold"), all but the last one ("wrong"), or asks a question first ("asker")."""
    yield from served(ScriptedLLM(Scripts(("mock",), gold_calls={("mock", HISTORY_AND_ENV): [MARK_TASK_2]})))


@pytest.fixture(scope="module")
def user():
    """The rule-based user simulator, served from this process."""
    yield from served(RuleBasedUser())


def play(agent, user_url: str, script: str, task_id: str, user_llm: str = "openai/rule-based-user-mock"):
    """One episode of mock task `task_id` through tau2train's workflow (tau2's orchestrator and
    evaluator), the agent double `agent` playing `script` on it, the user at `user_url`."""
    econfig = EnvConfig(domain="mock", user_llm_base_url=user_url, user_llm=user_llm)
    wf = Tau2AgentWorkflow(econfig=econfig, timeout=60.0, dump_dir=None,
                           agent_model=f"{script}@mock/{task_id}", max_concurrent_episodes=4)
    data = {"task_id": task_id, "split": "all"}
    return asyncio.run(wf.play(data, agent.base_url, "k"))


def user_says(episode) -> list[str]:
    return [m["content"] for m in episode.info.messages if m["role"] == "user"]


# -- what it plays ------------------------------------------------------------------------------

def test_every_mock_task_is_played_or_left_out_with_a_reason():
    from tau2.registry import registry

    tasks = [task.id for task in registry.get_tasks_loader("mock")(None)]
    covered = coverage("mock")
    assert sorted(covered.played + tuple(covered.left_out)) == sorted(tasks)
    assert set(covered.played).isdisjoint(covered.left_out)
    assert covered.played == PLAYED["mock"] and covered.left_out == LEFT_OUT["mock"]
    assert sorted(OPENINGS) == sorted(covered.played)
    assert list(covered.left_out) == [NL_EVAL]
    assert "every agent 1.0" in covered.left_out[NL_EVAL]


def test_a_domain_without_rules_is_refused_with_one_message(capsys):
    with pytest.raises(ConfigError) as error:
        coverage("airline")
    assert (error.value.key, error.value.value, error.value.valid) == ("domain", "airline", "mock")
    assert "user_sim=qwen2_5_7b" in error.value.fix
    # the server refuses it at start, before serving anything (exit status 2, as for bad input)
    with pytest.raises(SystemExit) as exit_:
        rule_based.main(["--domain", "airline", "--port", "0", "--tp", "0", "--model-path", "x"])
    assert exit_.value.code == BAD_INPUT_EXIT_CODE
    err = capsys.readouterr().err
    assert err.startswith("error: --domain='airline': the rule-based user simulator (not an LLM")
    assert "  valid: mock" in err and "  fix:   use domain=mock with user_sim=rule_based" in err


def test_the_stop_tokens_are_tau2s():
    from tau2.user import base

    assert (STOP, TRANSFER) == (base.STOP, base.TRANSFER)


# -- episodes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("task_id", PLAYED["mock"])
def test_a_gold_agent_earns_full_reward(agent, user, task_id):
    episode = play(agent, user.base_url, "gold", task_id)
    assert episode.info.reward == 1.0, episode.info.reward_info
    assert episode.info.termination_reason == "user_stop"
    assert user_says(episode)[-2:] == [OPENINGS[task_id], f"Thank you, that is all. {STOP}"]
    assert episode.discard_reason is None


@pytest.mark.parametrize("task_id", PLAYED["mock"])
def test_an_agent_that_skips_the_gold_action_earns_zero(agent, user, task_id):
    episode = play(agent, user.base_url, "wrong", task_id)
    assert episode.info.reward == 0.0
    assert episode.info.termination_reason == "user_stop"
    assert user_says(episode)[-2:] == [OPENINGS[task_id], f"Thank you, that is all. {STOP}"]
    if task_id == "create_task_1_with_env_assertions":
        # tau2's env assertion on task_2, which was never created, raises instead of failing
        assert "Task task_2 not found" in episode.discard_reason
    else:
        assert episode.discard_reason is None


def test_a_question_before_acting_gets_the_request_once_more(agent, user):
    episode = play(agent, user.base_url, "asker", "update_task_1")
    assert episode.info.reward == 1.0
    request = OPENINGS["update_task_1"]
    assert user_says(episode) == [request, request, f"Thank you, that is all. {STOP}"]
    assert QUESTION in [m["content"] for m in episode.info.messages if m["role"] == "assistant"]


def test_the_left_out_task_is_refused_with_its_reason(agent, user):
    episode = play(agent, user.base_url, "gold", NL_EVAL)
    assert episode.info.failure == "user_sim" and episode.discard_reason  # discarded, not scored
    assert f"leaves out mock task {NL_EVAL}: {LEFT_OUT['mock'][NL_EVAL]}" in episode.info.error


def test_the_left_out_reason_holds(agent):
    """create_task_1_nl_eval scores every agent 1.0: one that creates the task its scenario asks
    for, and one that does nothing (played with the scripted user, which knows the task)."""
    creates = ScriptedLLM(Scripts(("mock",), gold_calls={("mock", NL_EVAL): [CREATE_MEETING]}))
    creates.start()
    try:
        did = play(creates, creates.base_url, "gold", NL_EVAL, user_llm="user")
        nothing = play(agent, agent.base_url, "gold", NL_EVAL, user_llm="user")
    finally:
        creates.stop()
    called = [c["name"] for m in did.info.messages for c in (m.get("tool_calls") or [])]
    assert called == ["create_task"] and did.info.reward == 1.0
    assert not any(m.get("tool_calls") for m in nothing.info.messages) and nothing.info.reward == 1.0


# -- the rules, turn by turn ----------------------------------------------------------------------

SCENARIO = "Instructions:\n\tRequest that task_1 be marked as completed."


def test_an_agent_that_keeps_asking_gets_the_request_at_most_twice_then_the_user_stops():
    conversation = [Said(False, "Hi! How can I help you today?")]
    while True:
        turn = next_turn(SCENARIO, conversation)
        conversation.append(Said(True, turn))
        if STOP in turn:
            break
        conversation.append(Said(False, "Which task do you mean?"))
    mine = [s.text for s in conversation if s.me]
    assert mine == ["Please mark task_1 as completed."] * MAX_REQUESTS + [f"Thank you, that is all. {STOP}"]


@pytest.mark.parametrize("reply,answer", [
    ("I cannot delete tasks, so I am transferring you to a human agent.", f"Okay, thank you. {TRANSFER}"),
    ("I've marked task_1 as completed. Anything else I can help with?", f"Thank you, that is all. {STOP}"),
    ("Done. Would you like to add a description?", f"Thank you, that is all. {STOP}"),
    ("Shall I mark task_1 as completed?", "Please mark task_1 as completed."),
])
def test_the_user_answers_the_agents_text(reply, answer):
    conversation = [Said(False, "Hi!"), Said(True, "Please mark task_1 as completed."), Said(False, reply)]
    assert next_turn(SCENARIO, conversation) == answer


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_scenario_no_rule_reads_is_refused(user):
    airline = "<scenario>\nInstructions:\n\tYou want to change your flight to Boston.\n</scenario>"
    code, body = post(user.base_url, {"model": "x", "messages": [
        {"role": "system", "content": airline}, {"role": "user", "content": "Hi!"}]})
    assert code == 400
    assert body["error"]["message"].startswith("the rule-based user simulator (not an LLM; smoke runs only) "
                                               "has no rule for this scenario: 'You want to change your flight")
    code, body = post(user.base_url, {"model": "x", "messages": [{"role": "user", "content": "Hi!"}]})
    assert code == 400 and "<scenario>" in body["error"]["message"]


def test_a_taken_port_is_an_error_at_start_not_a_hang(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_:
            rule_based.main(["--host", "127.0.0.1", "--port", str(port)])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith(
        f"error: the rule-based user simulator (not an LLM; smoke runs only) cannot listen on 127.0.0.1:{port}: ")


# -- the path a user takes ------------------------------------------------------------------------

@pytest.mark.slow
def test_tau2train_user_sim_serves_it_records_it_and_an_episode_uses_it(launched, agent):
    process, record_file, port = launched
    wait_for(lambda: record_file.exists() or process.poll() is not None, "the record", DEADLINE_S)
    assert process.poll() is None, process.communicate()
    record = json.loads(record_file.read_text())
    url = f"http://127.0.0.1:{port}/v1/"
    assert (record["url"], record["served_model_name"]) == (url, "rule-based-user-mock")
    assert record["model_path"] == "none (rule-based, no weights)"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        assert response.status == 200
    # what a training run with user_sim=rule_based sends: econfig.user_llm follows the served name
    episode = play(agent, record["url"], "gold", "update_task_with_message_history")
    assert episode.info.reward == 1.0
    assert ("rule-based user simulator (not an LLM; smoke runs only) for tau2's mock tasks "
            f"(8 played, left out: {NL_EVAL}) serving on ") in Path(record["logs"][0]).read_text()

    process.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"user-sim server 'rule-based-user-mock' is up at {url}" in out
    assert not record_file.exists()
