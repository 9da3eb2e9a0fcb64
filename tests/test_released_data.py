"""`data=areal_tau2`: the released AReaL-tau2-data layout (a fixture made from τ²'s own tasks,
tests/helpers/areal_tau2.py), checked before anything starts, turned into rows of every domain,
and each row played and scored on its own DB snapshot by real tau2 (stock and fast_env)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from helpers.areal_tau2 import (
    N_ROWS,
    SNAPSHOT_LINE,
    SNAPSHOT_RESERVATION,
    SNAPSHOT_TASK_ID,
    replace_line,
    scripts_with_rows,
    write_dataset,
)
from helpers.cli import USER_SIM
from helpers.recording_trainer import RECORD_NAME
from helpers.served import served
from tau2.data_model.message import ToolMessage
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
from tau2.registry import registry

from tau2train.config import areal_tau2
from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked
from tau2train.records.areal_tau2 import DB_DIR, RL_FILE, RL_SPLIT
from tau2train.rollout import fast_env, snapshots
from tau2train.rollout.datasets import rows_dataset
from tau2train.rollout.workflow import Tau2AgentWorkflow
from tau2train.schemas import EnvConfig

TESTS = Path(__file__).resolve().parent
STAND_IN = ["trainer._target_=helpers.recording_trainer.RecordingTrainer", "trainer.cpu_only=true"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("AReaL-tau2-data"))


@pytest.fixture(scope="module")
def rows(dataset) -> list[dict]:
    return list(areal_tau2.load(str(dataset), None).rows)


@pytest.fixture(scope="module")
def snap_llm(dataset):
    """The scripted server, knowing the fixture's tasks (the altered one too)."""
    from helpers.scripted_llm import ScriptedLLM

    yield from served(ScriptedLLM(scripts=scripts_with_rows(dataset)))
    for domain in ("airline", "retail", "mock"):  # the workflows installed these
        fast_env.uninstall(domain)


def row_at(rows: list[dict], line: int) -> dict:
    return next(r for r in rows if r["line"] == line)


# --- loading and checking ------------------------------------------------------------------


def test_every_line_becomes_a_row_naming_its_domain_line_and_snapshot(dataset, rows):
    assert len(rows) == N_ROWS
    assert [r["line"] for r in rows] == list(range(1, N_ROWS + 1))  # ids repeat; lines do not
    assert Counter(r["task_id"] for r in rows)["1"] == 2
    assert Counter(r["domain"] for r in rows) == {"airline": 5, "retail": 4, "telecom": 3}
    assert {r["split"] for r in rows} == {RL_SPLIT}
    assert {r["data_file"] for r in rows} == {str((dataset / RL_FILE).resolve())}
    assert {Path(r["db_path"]).name for r in rows if r["domain"] == "telecom"} == {"tau2_telecom_new_db_1.toml"}
    assert all(Path(r["db_path"]).is_file() for r in rows)
    assert len(json.dumps(rows[0])) < 400  # the Task stays in the file: rows are small
    retail = areal_tau2.load(str(dataset), ["retail"])
    assert {r["domain"] for r in retail.rows} == {"retail"} and len(retail.rows) == 4
    assert len(rows_dataset(list(retail.rows), min_size=10)) == 12  # repeated whole, like a τ² split


def test_the_config_validates_and_the_domain_choice_picks_rows(dataset):
    job = checked(compose([USER_SIM, "data=areal_tau2", f"data.path={dataset}", "data.domains=[airline,telecom]"]))
    exp = job.config
    assert job.domains == ("airline", "telecom") and len(job.rl_data.rows) == 8
    assert exp.data.source == "areal_tau2" and exp.train_dataset.split == RL_SPLIT
    assert exp.experiment_name == "tau2-qwen3-1.7b-areal-tau2"
    summary = areal_tau2.summary(areal_tau2.load(exp.data.path, exp.data.domains))
    assert summary.startswith("8 RL rows (airline 5, telecom 3), left out: retail; 2 snapshot(s) found")


def _bad_criteria(row: dict) -> None:
    row["evaluation_criteria"] = row["evaluation_criteria"][:-2]


def _not_a_task(row: dict) -> None:
    del row["user_scenario"]["instructions"]["reason_for_call"]


def _unknown_domain(row: dict) -> None:
    row["user_scenario"]["instructions"]["domain"] = "banking"


def _missing_snapshot(row: dict) -> None:
    row["db_path"] = f"{DB_DIR}/tau2_airline_new_db_7.json"


def _no_snapshot(row: dict) -> None:
    del row["db_path"]


# case -> (how line 3 is spoilt, words the message must hold after "<file>:3: ")
BAD_ROWS = {
    "line is not JSON": (None, "not a JSON object"),
    "criteria do not parse": (_bad_criteria, "evaluation_criteria is not valid JSON"),
    "Task does not validate": (_not_a_task, "not a τ² Task: user_scenario.instructions."),
    "unknown domain": (_unknown_domain, "domain 'banking' is not one of tau2's"),
    "snapshot missing": (_missing_snapshot, "its snapshot tau2_rl_database/tau2_airline_new_db_7.json does not exist"),
    "no db_path": (_no_snapshot, "no db_path"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_malformed_row_gets_one_message_naming_file_and_line(case, tmp_path):
    root = write_dataset(tmp_path / "data")
    spoil, words = BAD_ROWS[case]
    row = json.loads((root / RL_FILE).read_text().splitlines()[2])
    if spoil:
        spoil(row)
    replace_line(root, 3, json.dumps(row) if spoil else "{not json")
    with pytest.raises(ConfigError) as error:
        checked(compose([USER_SIM, "data=areal_tau2", f"data.path={root}"]))
    assert error.value.key == "data.path"
    assert error.value.problem.startswith(f"{(root / RL_FILE).resolve()}:3: {words}"), error.value.problem
    assert error.value.fix


@pytest.mark.parametrize(
    "overrides,key,words",
    [
        (["data.path={missing}"], "data.path", ["no such folder", "huggingface-cli download"]),
        (["data.path={empty}"], "data.path", [f"the folder has no {RL_FILE}"]),
        (["data.path={root}", "data.domains=[airline,banking]"], "data.domains",
         ["has no banking rows", "airline (5 rows), retail (4 rows), telecom (3 rows)"]),
        (["data.path={root}", "data.domains=[]"], "data.domains", ["nothing to train on"]),
        (["data.path={root}", "data.domains=[airline,retail]", "data.weights={{airline:1,telecom:1}}"],
         "data.weights", ["names airline, telecom; the rows trained on are airline, retail",
                          "e.g. data.weights={airline:1,retail:1}"]),
        (["data.path={root}", "data.weights={{airline:1,retail:0,telecom:1}}"], "data.weights",
         ["every weight must be a positive number"]),
        (["data.path={root}", "econfig.reward_basis_by_domain.airline=[DB,MONEY]"],
         "econfig.reward_basis_by_domain.airline", ["'MONEY' is not a tau2 reward type"]),
        (["data.path={root}", "+econfig.reward_basis_by_domain.banking=[DB]"],
         "econfig.reward_basis_by_domain.banking", ["'banking' is not a tau2 domain"]),
        (["data.path={root}", "data.domains=[airline]",
          "econfig.user_llm_by_domain={{retail:{{base_url:'http://127.0.0.1:9/v1/'}}}}"],
         "econfig.user_llm_by_domain.retail", ["this run trains on no such rows", "valid: airline"]),
        (["data.path={root}", "econfig.user_llm_by_domain={{retail:{{model:openai/user-retail}}}}"],
         "econfig.user_llm_by_domain.retail.base_url", ["is not an http(s) URL"]),
    ],
    ids=["missing folder", "folder without the file", "unknown domain", "no domain", "weights of other domains",
         "zero weight", "unknown reward type", "reward basis of an unknown domain", "user sim of an untrained domain",
         "user sim without URL"],
)
def test_a_wrong_folder_or_domain_choice_is_named(overrides, key, words, dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "root": dataset}
    with pytest.raises(ConfigError) as error:
        checked(compose([USER_SIM, "data=areal_tau2", *[o.format(**paths) for o in overrides]]))
    assert error.value.key == key
    for word in words:
        assert word in error.value.render()


@pytest.mark.parametrize("override", ["data.path={dataset}", "data.weights={{airline:1}}"])
def test_data_tau2_reads_no_path_nor_weights(override, dataset):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"data=tau2 trains on τ²'s own splits and reads no {key}"):
        checked(compose([USER_SIM, override.format(dataset=dataset)]))


def test_mixing_weights_give_each_domain_its_share_of_an_epoch(dataset):
    loaded = areal_tau2.load(str(dataset), None)  # airline 5, retail 4, telecom 3
    assert areal_tau2.mixed_rows(loaded, {}, seed=1) == list(loaded.rows)
    mixed = areal_tau2.mixed_rows(loaded, {"airline": 1, "retail": 1, "telecom": 2}, seed=1)
    assert len(mixed) == len(loaded.rows) == 12
    assert Counter(r["domain"] for r in mixed) == {"airline": 3, "retail": 3, "telecom": 6}
    drawn = Counter(r["line"] for r in mixed)
    assert all(drawn[r["line"]] == 2 for r in loaded.rows if r["domain"] == "telecom")  # repeated whole
    assert all(drawn[r["line"]] <= 1 for r in loaded.rows if r["domain"] != "telecom")  # drawn, no row twice
    assert mixed == areal_tau2.mixed_rows(loaded, {"airline": 1, "retail": 1, "telecom": 2}, seed=1)
    assert mixed != areal_tau2.mixed_rows(loaded, {"airline": 1, "retail": 1, "telecom": 2}, seed=2)
    # shares that do not divide evenly: the largest remainders get the rows left over
    assert areal_tau2.domain_counts(12, {"airline": 1, "retail": 1, "telecom": 1}) == {
        "airline": 4, "retail": 4, "telecom": 4}
    assert areal_tau2.domain_counts(10, {"airline": 1, "retail": 1, "telecom": 1}) == {
        "airline": 4, "retail": 3, "telecom": 3}


# --- episodes on the row's snapshot --------------------------------------------------------


def workflow(llm, fast: bool, model: str = "gold", domain: str = "airline") -> Tau2AgentWorkflow:
    econfig = EnvConfig(domain=domain, user_llm_base_url=llm.base_url, user_llm="user", fast_env=fast)
    return Tau2AgentWorkflow(econfig=econfig, timeout=60.0, agent_model=model, max_concurrent_episodes=8)


def play(wf, row, llm):
    return asyncio.run(wf.play(row, llm.base_url, "k"))


def tool_results(episode) -> list[str]:
    return [m.content for m in episode.simulation.messages if isinstance(m, ToolMessage)]


@pytest.mark.parametrize("fast", [False, True], ids=["stock", "fast_env"])
def test_gold_replay_on_the_rows_snapshot_scores_full_and_not_on_the_stock_db(fast, rows, snap_llm):
    row = row_at(rows, SNAPSHOT_LINE)
    assert row["task_id"] == SNAPSHOT_TASK_ID
    name = snapshots.alias("airline", row["db_path"])
    fast_env.uninstall(name)
    episode = play(workflow(snap_llm, fast), row, snap_llm)
    assert hasattr(registry.get_env_constructor(name), "fast_env_domain") is fast

    assert episode.info.reward == 1.0, episode.info.reward_info
    assert episode.info.reward_info["db_check"]["db_match"] is True
    assert list(episode.info.completion_rewards.values())[-1] == 1.0
    cancelled = json.loads(tool_results(episode)[0])  # the gold cancel succeeded on the snapshot
    assert cancelled["reservation_id"] == SNAPSHOT_RESERVATION and cancelled["status"] == "cancelled"
    assert episode.info.domain == "airline"
    assert episode.info.source == f"{row['data_file']}:{SNAPSHOT_LINE} on {row['db_path']}"

    # the same actions against the stock DB: the reservation does not exist there, so tau2's
    # evaluator cannot even replay the episode, and the gold action fails
    with pytest.raises(ValueError, match="Reservation SNAP9R not found"):
        evaluate_simulation(simulation=episode.simulation, task=episode_task(episode),
                            evaluation_type=EvaluationType.ALL, solo_mode=False, domain="airline")
    stock = snapshots.stock_constructor("airline")()
    with pytest.raises(ValueError, match="not found"):
        stock.make_tool_call("cancel_reservation", requestor="assistant", reservation_id=SNAPSHOT_RESERVATION)


def episode_task(episode):
    from tau2.data_model.tasks import Task

    return Task.model_validate(episode.info.task)


def test_fast_env_and_stock_give_the_same_results_on_snapshot_rows(rows, snap_llm):
    results = {}
    for fast in (False, True):
        for line in (SNAPSHOT_LINE, 2, 5):  # altered airline snapshot, airline task 7, retail task 0
            row = row_at(rows, line)
            name = snapshots.alias(row["domain"], row["db_path"])
            if not fast:
                fast_env.uninstall(name)
            for model in ("gold", "wrong"):
                info = play(workflow(snap_llm, fast, model), row, snap_llm).info
                results.setdefault((line, model), []).append(
                    (info.reward, info.reward_info["db_check"], info.reward_info["reward_breakdown"]))
    for key, (stock, fast) in results.items():
        assert stock == fast, key
    assert [results[(line, "gold")][0][0] for line in (SNAPSHOT_LINE, 2, 5)] == [1.0, 1.0, 1.0]
    assert [results[(line, "wrong")][0][0] for line in (2, 5)] == [0.0, 0.0]


def test_one_shared_read_only_snapshot_per_process(rows, snap_llm):
    row = row_at(rows, SNAPSHOT_LINE)
    wf = workflow(snap_llm, fast=True)
    for _ in range(2):
        assert play(wf, row, snap_llm).info.reward == 1.0
    constructor = registry.get_env_constructor(snapshots.alias("airline", row["db_path"]))
    pristine = constructor.fast_env_domain.pristine
    assert pristine.reservations[SNAPSHOT_RESERVATION].status != "cancelled"  # episodes cancelled copies
    assert constructor.fast_env_domain is registry.get_env_constructor(
        snapshots.alias("airline", row["db_path"])).fast_env_domain


def test_a_row_brings_its_own_domain(rows, snap_llm):
    """A workflow configured for airline plays a retail row in retail, on its snapshot."""
    row = row_at(rows, 5)
    episode = play(workflow(snap_llm, fast=True, domain="airline"), row, snap_llm)
    assert (episode.info.domain, episode.info.task_id, episode.info.reward) == ("retail", "0", 1.0)
    assert episode.info.reward_info["db_check"]["db_match"] is True


def test_each_domain_is_scored_on_its_own_basis_and_played_by_its_own_user_simulator(rows, snap_llm):
    """A mixed run's per-domain settings: retail rows scored on ACTION and their users played by
    the retail user simulator (here the scripted server under another model name); airline rows
    keep econfig's own user simulator and their basis ([DB], as data=areal_tau2 sets it)."""
    econfig = EnvConfig(
        domain="airline", user_llm_base_url=snap_llm.base_url, user_llm="user", fast_env=True,
        reward_basis_by_domain={"airline": ["DB"], "retail": ["ACTION"]},
        user_llm_by_domain={"retail": {"base_url": snap_llm.base_url, "model": "openai/user-retail"}},
    )
    wf = Tau2AgentWorkflow(econfig=econfig, timeout=60.0, agent_model="gold", max_concurrent_episodes=8)
    before = Counter(snap_llm.requests)
    retail = play(wf, row_at(rows, 5), snap_llm).info
    after_retail = Counter(snap_llm.requests)
    airline = play(wf, row_at(rows, 2), snap_llm).info
    after_airline = Counter(snap_llm.requests)
    assert (retail.domain, airline.domain) == ("retail", "airline")
    assert retail.task["evaluation_criteria"]["reward_basis"] == ["DB", "COMMUNICATE"]  # the task's own
    assert retail.reward_info["reward_basis"] == ["ACTION"]  # what tau2's evaluator scored
    assert set(retail.reward_info["reward_breakdown"]) == {"ACTION"}
    assert airline.reward_info["reward_basis"] == ["DB"]
    assert (retail.reward, airline.reward) == (1.0, 1.0)
    assert after_retail["user-retail"] - before["user-retail"] >= 1
    assert after_retail["user"] == before["user"]
    assert after_airline["user"] - after_retail["user"] >= 1
    assert after_airline["user-retail"] == after_retail["user-retail"]


# --- through the command line --------------------------------------------------------------


def test_dry_run_shows_rows_per_domain_and_snapshots(cli, dataset, tmp_path):
    result = cli("dry_run=true", "tracking=none", USER_SIM, "data=areal_tau2", f"data.path={dataset}",
                     f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("data "))
    assert f"{dataset}: 12 RL rows (airline 5, retail 4, telecom 3); 3 snapshot(s) found: " in line
    assert "tau2_telecom_new_db_1.toml" in line
    domains = next(x for x in result.stdout.splitlines() if x.strip().startswith("domains "))
    assert "valid split 'test' of every trained domain; max steps: airline 50, retail 50, telecom 100" in domains
    # the paper's reward per domain; one user simulator for all
    lines = [x.split() for x in result.stdout.splitlines()]
    assert ["reward", "basis", "(airline)", "DB", "training", "episodes'", "tau2", "reward", "types"] in lines
    assert ["reward", "basis", "(telecom)", "ENV_ASSERTION", "training", "episodes'", "tau2", "reward", "types"] in lines
    assert sum(1 for x in lines if x[:2] == ["user", "sim"]) == 3


def test_a_bad_row_stops_the_command_with_status_2_and_nothing_written(cli, dataset, tmp_path):
    root = write_dataset(tmp_path / "data")
    replace_line(root, 7, '{"id": "x"')
    result = cli("dry_run=true", "tracking=none", USER_SIM, "data=areal_tau2", f"data.path={root}",
                     f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: data.path='{root}': {(root / RL_FILE).resolve()}:7: not a JSON object")
    assert not (tmp_path / "exp").exists()


def test_training_reaches_the_trainer_with_rows_of_every_domain(cli, dataset, tmp_path):
    result = cli(*STAND_IN, USER_SIM, "data=areal_tau2", f"data.path={dataset}", "min_dataset_size=0",
                     f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, result.stderr
    call = json.loads((tmp_path / "exp" / "tau2-qwen3-1.7b-areal-tau2" / "trial0" / RECORD_NAME).read_text())
    train = call["train_rows"]
    assert Counter(r["domain"] for r in train) == {"airline": 5, "retail": 4, "telecom": 3}
    assert [r["line"] for r in train] == list(range(1, N_ROWS + 1))
    assert all(Path(r["db_path"]).is_file() and r["split"] == RL_SPLIT for r in train)
    # validation: τ²'s test split of every trained domain, each row naming its domain
    valid = Counter((r["domain"], r["split"]) for r in call["valid_rows"])
    assert valid == {("airline", "test"): 20, ("retail", "test"): 40, ("telecom", "test"): 40}
    assert call["workflow_types"] == ["Tau2AgentWorkflow", "Tau2AgentWorkflow"]
    assert call["config"]["econfig"]["reward_basis_by_domain"] == {
        "airline": ["DB"], "retail": ["DB"], "telecom": ["ENV_ASSERTION"]}


def test_mixing_weights_and_a_domains_user_simulator_reach_the_trainer(cli, dataset, snap_llm, tmp_path):
    retail_user = f"econfig.user_llm_by_domain={{retail:{{base_url:'{snap_llm.base_url}',model:openai/user-retail}}}}"
    args = [USER_SIM, "data=areal_tau2", f"data.path={dataset}", "min_dataset_size=0",
            "data.weights={airline:1,retail:1,telecom:2}", retail_user, f"cluster.fileroot={tmp_path}/exp"]
    plan = cli("dry_run=true", "tracking=none", *args, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "mixed by data.weights: airline 3 (0.6x), retail 3 (0.75x), telecom 6 (2x)" in plan.stdout
    assert ["user", "sim", "(retail)", "openai/user-retail", snap_llm.base_url] in [
        x.split() for x in plan.stdout.splitlines()]
    result = cli(*STAND_IN, *args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, result.stderr
    call = json.loads((tmp_path / "exp" / "tau2-qwen3-1.7b-areal-tau2" / "trial0" / RECORD_NAME).read_text())
    assert Counter(r["domain"] for r in call["train_rows"]) == {"airline": 3, "retail": 3, "telecom": 6}
    assert call["config"]["econfig"]["user_llm_by_domain"] == {
        "retail": {"base_url": snap_llm.base_url, "model": "openai/user-retail"}}
