"""A rollout-only check on airline through AReaL's engine and proxy: one τ² airline episode,
the policy forced to tau2's gold actions, and the reward AReaL would train on.

What is real: tau2train's composed config (`domain=airline`, the rollout and agent settings of
conf/config.yaml, the workflow arguments and the fresh admin key the trainer hands AReaL:
tau2train.launch.train.ppo_config / workflow_kwargs); AReaL's RemoteSGLangEngine and its
workflow executor, which resolves tau2train's workflow path into AReaL's OpenAIProxyWorkflow
(areal/infra/remote_inf_engine.py:603-711) as a rollout worker does; AReaL's proxy rollout
server as its own process, started with the command line AReaL's local scheduler forks it with
(areal/infra/scheduler/local.py:341-368, `python -m
areal.experimental.openai.proxy.proxy_rollout_server`) and set up with the calls the rollout
controller makes (/configure, /create_engine, /call initialize:
areal/infra/controller/rollout_controller.py:367-410), here on 127.0.0.1; its chat template,
tool-call and reasoning parsers; tau2train's workflow, reward rule and trajectory records;
tau2's airline environment, orchestrator and evaluator.

Test doubles: the policy is the tiny Qwen3 (tau2train/serving/tiny_qwen.py) behind the CPU server that
speaks SGLang's HTTP protocol (helpers/cpu_sglang.py), its completions forced to task 11's
gold script (helpers/scripted_llm.py's Scripts: the gold tool call, then a reply that says the
refund, 5244, that tau2's COMMUNICATE check wants), with the model's own teacher-forced
log-probabilities; the user simulator is helpers/plain_user.py (opens, then ends the chat
with ###STOP### at the agent's first reply). The tiny model is served with a context of 8192
tokens (its config says 4096; rotary positions extend): the airline system prompt with its
tool schemas makes the first agent prompt ~4.9k tokens.

No trainer and no FSDP: the test calls what AReaL's rollout worker runs (`submit` with the
proxy address, `wait`, `export_stats`) in its own process. turn_discount is 0.5, so AReaL's
export (reward[i] += 0.5 * reward[i+1], areal/experimental/openai/cache.py:55-110) is seen.

Then, on the same engine and proxy, failures outside the policy: a group of 3 episodes whose
user simulator fails one (helpers/plain_user.py's `fail_openings`), dropped alone: the group trains on the
other 2 (group_filter.min_episodes=2, tau2train's GroupFilter as the trainer passes it), and
the step's stats count it; and an episode that outlives a user-simulator outage (the double stopped, then
started again on its port once the episode waits), which AReaL accepts.

Runtime: ~1 min on 2 cores; memory: ~3 GB (PSS of this process and the proxy's, summed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import requests
from helpers.areal_run import areal_dir
from helpers.cli import wait_for
from helpers.cpu_sglang import CPUSGLangServer
from helpers.scripted_llm import Turn
from tau2train.serving.tiny_qwen import IM_END_ID, tiny_qwen_dir

pytestmark = [pytest.mark.areal, pytest.mark.slow, pytest.mark.timeout(600)]

EXPERIMENT, TRIAL = "tau2-tiny-qwen3-airline", "rollout0"
SPLIT, TASK = "train", "11"  # one write (update_reservation_flights), one fact to say (5244)
DISCOUNT = 0.5
CONTEXT = 8192
PROXY_MODULE = "areal.experimental.openai.proxy.proxy_rollout_server"
ENGINE_CLASS = "areal.engine.sglang_remote.RemoteSGLangEngine"
PROXY_DEADLINE_S = 180
EPISODE_DEADLINE_S = 300


def experiment(root: Path, user_url: str):
    """The experiment as a user composes it: airline, the tiny model, one episode at a time."""
    from tau2train.config.compose import compose

    return compose(
        [
            "mode=train",
            "domain=airline",
            "tracking=none",
            f"model.path={tiny_qwen_dir()}",
            "model.name=tiny-qwen3",
            f"experiment_name={EXPERIMENT}",
            f"trial_name={TRIAL}",
            "allocation.rollout=sglang:d1",
            f"cluster.fileroot={root}/experiments",
            f"cluster.name_resolve.nfs_record_root={root}/name_resolve",
            f"econfig.user_llm_base_url={user_url}",
            "econfig.user_llm=openai/user",
            f"reward.turn_discount={DISCOUNT}",
            "gconfig.n_samples=1",
            "gconfig.max_new_tokens=256",
            f"gconfig.max_tokens={CONTEXT}",
            f"sglang.context_length={CONTEXT}",
            "train_dataset.batch_size=1",
            "rollout.max_concurrent_rollouts=1",
        ]
    ).config


def forced(turn: Turn) -> str:
    """What the policy must write for a scripted turn: Qwen's tool-call blocks, or the text."""
    if not turn.calls:
        return turn.text
    return "\n".join(
        "<tool_call>\n" + json.dumps({"name": name, "arguments": json.loads(arguments)}) + "\n</tool_call>"
        for name, arguments in turn.calls
    )


def post(url: str, payload: dict) -> dict:
    """One of the rollout controller's calls to a proxy worker (orjson-encoded, as AReaL's
    scheduler sends them)."""
    response = requests.post(
        url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}, timeout=300
    )
    assert response.status_code == 200, f"{url}: HTTP {response.status_code} {response.text[:2000]}"
    return response.json()


@pytest.fixture
def proxy(tmp_path):
    """AReaL's proxy rollout server, as its own process on 127.0.0.1; yields (url, process,
    log). Configured by the test (see `set_up_proxy`) once the policy server runs."""
    from areal.utils.network import find_free_ports

    (port,) = find_free_ports(1)
    record_root = tmp_path / "name_resolve"
    record_root.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "proxy.log"
    command = [
        sys.executable, "-m", PROXY_MODULE,
        "--host", "127.0.0.1", "--port", str(port),
        "--experiment-name", EXPERIMENT, "--trial-name", TRIAL,
        "--role", "proxy", "--worker-index", "0",
        "--name-resolve-type", "nfs", "--nfs-record-root", str(record_root),
        "--fileroot", str(tmp_path / "experiments"),
    ]  # fmt: skip
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(60)


def explain(process: subprocess.Popen, log: Path):
    def tail() -> str:
        state = "running" if process.poll() is None else f"exited with {process.returncode}"
        return f"; the proxy is {state}, its log ends with:\n{log.read_text(errors='replace')[-4000:]}"

    return tail


def set_up_proxy(url: str, process, log: Path, ppo_config, server: CPUSGLangServer) -> None:
    """What RolloutController.start_proxy does once the worker is forked: the scheduler's
    /configure (areal/infra/scheduler/local.py:1014), /create_engine with the rollout config
    (rollout_controller.py:385-390), /call initialize with the policy server's address
    (rollout_controller.py:400-405)."""
    from areal.infra.rpc.serialization import serialize_value

    def healthy():
        if process.poll() is not None:
            raise AssertionError(f"the proxy exited with {process.returncode}{explain(process, log)()}")
        try:
            return requests.get(f"{url}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(
        healthy, "AReaL's proxy rollout server to answer /health", PROXY_DEADLINE_S, explain(process, log)
    )
    post(f"{url}/configure", serialize_value({"config": ppo_config, "role": "proxy", "rank": 0}))
    post(
        f"{url}/create_engine",
        {
            "engine": ENGINE_CLASS,
            "engine_name": "proxy/0",
            "init_args": serialize_value([]),
            "init_kwargs": serialize_value({"config": ppo_config.rollout}),
        },
    )
    post(
        f"{url}/call",
        {
            "method": "initialize",
            "engine_name": "proxy/0",
            "args": serialize_value([]),
            "kwargs": serialize_value({"addr": server.address}),
            "rpc_meta": None,
        },
    )
    assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok", "initialized": True}


@dataclass
class Submitted:
    """A submission's outcome: AReaL's trajectory (None: rejected), its stats, and the
    episodes' records: those training discarded, and the others."""

    trajectory: dict | None
    stats: dict
    records: list[dict]
    trained: list[dict]
    failed_requests: int = 0


def submit_and_collect(engine, exp, proxy_url: str, group_size: int, accept=None, **econfig) -> Submitted:
    """One task submitted as a group, AReaL's verdict (`accept`: the group filter), and every
    episode's end on the stats."""
    from areal.utils import stats_tracker

    from tau2train.launch.train import WORKFLOW, workflow_kwargs
    from tau2train.records.layout import generated_dir

    before = set(generated_dir(exp.run_dir).rglob("*.json"))
    kwargs = workflow_kwargs(exp)
    kwargs = {**kwargs, "group_size": group_size, "econfig": {**kwargs["econfig"], **econfig}}
    task_id = engine.submit({"task_id": TASK, "split": SPLIT}, workflow=WORKFLOW, workflow_kwargs=kwargs,
                            should_accept_fn=accept, group_size=group_size, proxy_addr=proxy_url)
    trajectory = engine.wait_for_task(task_id, timeout=EPISODE_DEADLINE_S)
    wait_for(lambda: "rollout/tau2/groups_dropped_whole" in stats_tracker.export_all(reset=False),
             "the group's last episode to end", EPISODE_DEADLINE_S)
    records = [json.loads(p.read_text()) for p in set(generated_dir(exp.run_dir).rglob("*.json")) - before]
    return Submitted(trajectory, engine.export_stats(), [r for r in records if r["failure"]],
                     [r for r in records if not r["failure"]])


def group_losing_an_episode(engine, exp, proxy_url: str, user) -> Submitted:
    from tau2train.rollout.group_filter import GroupFilter

    failed = user.failed
    user.fail_openings = 1
    assert exp.group_filter.min_episodes_in(3) == 2  # the default
    accept = GroupFilter(max_mean_reward=None, min_episodes=2)
    outcome = submit_and_collect(engine, exp, proxy_url, 3, accept, user_llm_max_retries=0)
    outcome.failed_requests = user.failed - failed
    return outcome


def episode_through_an_outage(engine, exp, proxy_url: str, user) -> Submitted:
    """The user simulator stopped; an episode submitted; once it waits for the simulator, the
    simulator started again on its port."""
    from tau2train.rollout import chat

    user.stop()
    chat._outage_logged.clear()
    submitted = {}

    def submit():
        submitted["outcome"] = submit_and_collect(engine, exp, proxy_url, 1, user_llm_outage_s=120.0)

    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    wait_for(lambda: chat._outage_logged, "the episode to wait for the user simulator", EPISODE_DEADLINE_S)
    user.start()
    thread.join(EPISODE_DEADLINE_S)
    return submitted["outcome"]


def test_a_gold_forced_airline_episode_reaches_areals_rollout_reward_as_one(tmp_path, plain_user, proxy):
    from areal.engine.sglang_remote import RemoteSGLangEngine

    from tau2train.launch.train import WORKFLOW, ppo_config, workflow_kwargs
    from tau2train.records.layout import generated_dir
    from tau2train.rollout import fast_env
    from tau2train.rollout.episode import find_task

    exp = experiment(tmp_path, plain_user.base_url + "/")
    config = ppo_config(exp)
    rollout = config.rollout
    # the settings a user gets from conf/config.yaml: the proxy serves the agent inline, with
    # Qwen's parsers, and the env's turn discount is the one AReaL applies
    assert (rollout.agent.mode, rollout.agent.tool_call_parser, rollout.agent.reasoning_parser) == (
        "inline", "qwen25", "qwen3",
    )  # fmt: skip
    assert rollout.agent.turn_discount == DISCOUNT and rollout.agent.export_style == "individual"

    task = find_task("airline", SPLIT, TASK)
    gold = plain_user.scripts.agent_turns("gold", task, solo=False)
    assert [t.calls[0][0] if t.calls else None for t in gold] == ["update_reservation_flights", None]
    assert "5244" in gold[-1].text

    server = CPUSGLangServer(tiny_qwen_dir(), context_length=exp.sglang.context_length)
    server.start()
    engine = RemoteSGLangEngine(rollout)
    url, process, log = proxy
    try:
        set_up_proxy(url, process, log, config, server)
        queued = requests.post(
            f"{server.base_url}/tau2test/force", json={"completions": [forced(t) for t in gold]}, timeout=60
        )
        assert queued.json() == {"queued": len(gold), "turns": 0}
        engine.initialize(addr=server.address)
        engine.export_stats()  # start from empty trackers: this process may have run others

        # what AReaL's rollout worker runs for a training batch (RolloutController.submit →
        # RemoteInfEngine.submit with its proxy's address), then collects
        engine.submit(
            {"task_id": TASK, "split": SPLIT},
            workflow=WORKFLOW,
            workflow_kwargs=workflow_kwargs(exp),
            proxy_addr=url,
        )
        (trajectory,) = engine.wait(1, timeout=EPISODE_DEADLINE_S)
        stats = engine.export_stats()
        gold_records = list((generated_dir(exp.run_dir) / SPLIT / TASK).glob("*.json"))
        gold_dumps = list((areal_dir(Path(exp.cluster.fileroot), "logs", EXPERIMENT, TRIAL) / "rollout").glob("*/*.jsonl"))
        lost = group_losing_an_episode(engine, exp, url, plain_user)
        through_outage = episode_through_an_outage(engine, exp, url, plain_user)
    finally:
        engine.destroy()
        server.stop()
        # the workflow ran in this process and patched tau2's registry (econfig.fast_env);
        # later tests in this process expect tau2's stock constructors
        fast_env.uninstall(exp.econfig.domain)

    # the episode, as tau2train recorded it: tau2 scored the gold-forced episode 1
    (record,) = gold_records
    episode = json.loads(record.read_text())
    assert episode["error"] is None, episode["error"]
    assert (episode["reward"], episode["termination_reason"]) == (1.0, "user_stop")
    assert episode["reward_info"]["db_check"]["db_match"] is True
    assert list(episode["completion_rewards"].values()) == [0.0, 1.0]
    assert not episode["format_problems"]
    calls = [c for m in episode["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        (a.name, a.arguments) for a in task.evaluation_criteria.actions
    ]

    # what AReaL hands on for training: one row per completion, the policy's forced tokens
    # with their log-probabilities, rewards discounted backwards from the last completion
    assert trajectory is not None, f"AReaL rejected the episode{explain(process, log)()}"
    assert trajectory["rewards"].tolist() == pytest.approx([DISCOUNT * 1.0, 1.0])
    tokenizer = server.policy.tokenizer
    for row, turn in enumerate(gold):
        n = int(trajectory["attention_mask"][row].sum())
        mask = trajectory["loss_mask"][row, :n].bool()
        output = trajectory["input_ids"][row, :n][mask].tolist()
        assert output == tokenizer.encode(forced(turn), add_special_tokens=False) + [IM_END_ID]
        assert (trajectory["logprobs"][row, :n][mask] < 0).all()
        assert (trajectory["versions"][row, :n][mask] == 0).all()
        prompt = tokenizer.decode(trajectory["input_ids"][row, :n][~mask].tolist())
        assert "# Airline Agent Policy" in prompt and "update_reservation_flights" in prompt

    # and what the trainer logs as rollout/reward (rl_trainer.py:1272, the rollout workers'
    # export_stats: OpenAIProxyWorkflow's reward scalar, areal/experimental/openai/proxy/workflow.py)
    assert stats["rollout/reward"] == 1.0 and stats["rollout/accepted"] == 1.0
    assert "rollout/rejected" not in stats

    # A group of 3 whose user simulator fails one episode (HTTP 500, no retries): the episode is
    # recorded as the user simulator's failure and dropped alone; AReaL's group trains on the
    # other two (their completions' rows), and the step's stats say so (shares, per worker)
    assert lost.failed_requests == 1 and lost.trajectory is not None
    assert [r["failure"] for r in lost.records] == ["user_sim"] and len(lost.trained) == 2
    assert len(lost.trajectory["rewards"]) == sum(len(r["completion_rewards"]) for r in lost.trained)
    ours = {k: v for k, v in lost.stats.items() if "/tau2/" in k and not k.endswith("__count")}
    assert ours == pytest.approx({
        "rollout/tau2/episodes_failed/user_sim": 1 / 3, "rollout/tau2/episodes_failed/timeout": 0.0,
        "rollout/tau2/episodes_failed/evaluator": 0.0, "rollout/tau2/groups_dropped_whole": 0.0,
        "rollout/tau2/episodes_lost": 1 / 3,
    }), lost.stats
    assert lost.stats["rollout/accepted"] == 1.0 and "rollout/rejected" not in lost.stats

    # A user simulator down while an episode runs, back within econfig.user_llm_outage_s: the
    # episode waited for it and finished; AReaL accepted it, nothing was lost
    assert through_outage.trajectory is not None
    assert (through_outage.records, len(through_outage.trained)) == ([], 1)
    assert through_outage.stats["rollout/accepted"] == 1.0
    assert through_outage.stats["rollout/tau2/episodes_failed/user_sim"] == 0.0

    # AReaL's own trajectory dump (rollout.dump_to_file) carries the same rewards
    (dump,) = gold_dumps
    assert [json.loads(line)["reward"] for line in dump.read_text().splitlines()] == pytest.approx(
        [DISCOUNT, 1.0]
    )
