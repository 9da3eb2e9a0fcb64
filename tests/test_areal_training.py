"""AReaL's own PPOTrainer, end to end on this CPU machine: `python -m tau2train.run mode=train`
trains the tiny Qwen3 (tau2train/serving/tiny_qwen.py) with GRPO on τ²'s mock domain, through a user
simulator that fails and goes down.

Everything is the real thing (tau2train's CLI, composition and validation, AReaL's
PPOTrainer, local scheduler, RPC workers, FSDP actor, RemoteSGLangEngine, rollout proxy,
tool-call parser, staleness control, saver and recover checkpoints, tau2train's τ² workflow,
reward rule, group filter, failure stats and user-simulator watch, tau2's environment,
orchestrator and evaluator) except two test doubles: the inference server is
helpers/cpu_sglang.py (SGLang's HTTP protocol over the HF model, started by AReaL's rollout
worker through helpers/cpu_rollout_worker.py) and the user simulator is helpers/plain_user.py.

The policy's completions are forced (helpers/areal_run.py): each episode is [M, T], completion
rewards [R - penalty, R] after AReaL's turn discount of 1, R being tau2's reward for the task;
every step has advantages of both signs, so the update is a real one.

One run serves all the tests, which keeps the module at two AReaL start-ups (~3.5 min each on
2 cores). Issue 23's user simulator, in the first process:
- until step 1 is logged, 10% of its requests fail after the client's retries (from the 3rd
  request on, every 10th, and each retry of it): their episodes fail and are dropped alone,
  which leaves their groups of 2 below group_filter.min_episodes=2 (dropped whole), and the
  steps' stats must count exactly the double's failures;
- then it goes down for OUTAGE_S = 30 s (503s, then connection refused) while step 2's
  episodes need it: they wait, and step 2 trains on a whole group;
- once step 2 is logged (and its recover checkpoint written) it goes down for good: past
  econfig.user_llm_outage_s the command must exit 1 with one message naming the URL, and
  leave none of its processes behind.
Then the user simulator is back and the same command runs again (same experiment, trial,
ports and name-resolve records): it resumes from AReaL's recover checkpoint of step 2 and
does step 3. Runtime: 13-16 minutes on 2 cores; memory: ~10 GB (PSS summed over the run's
processes).

Needs sglang's Python package (AReaL's tool-call parser and SGLangConfig import it), which
`make install` adds without its GPU dependencies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import areal_run
from helpers.areal_run import (
    GROUP_SIZE,
    PENALTY,
    REPO,
    M,
    T,
    cpu_train_args,
    plain,
    processes_with_env,
    run_env,
    step_stats,
)
from helpers.cli import wait_for
from tau2train.serving.tiny_qwen import tiny_qwen_dir

# Each of the two AReaL runs may take up to RUN_DEADLINE_S (pyproject sets 900 s a test).
pytestmark = [pytest.mark.areal, pytest.mark.slow, pytest.mark.timeout(1500)]

EXPERIMENT, TRIAL = "tau2-tiny-qwen3-mock", "cpu0"
TOTAL_STEPS = 3
STOPPED_AFTER_STEP = 2  # the step after which the first process is stopped (the user sim down)
# One run's deadline: start-up ~3.5 min and ~1 min a step on 2 cores; generous on purpose.
RUN_DEADLINE_S = 1200
# The user simulator: 10% of its requests fail after the client's retries until step 1
FAIL_EVERY, FIRST_FAILURE, USER_RETRIES = 10, 3, 1
# then it is down for OUTAGE_S, within econfig.user_llm_outage_s: its episodes wait it out
# (their retries come at 1, 3, 7, 15, 30, 45 s of an outage: the limit leaves two after it;
# they would give up 20 s past the limit, after the run's watch has stopped the run)
OUTAGE_S, OUTAGE_LIMIT_S = 30, 60
# how long the stopped run may take, past the limit, to stop its workers and exit
STOP_DEADLINE_S = OUTAGE_LIMIT_S + 120


def train_args(root: Path, model: Path, user_url: str) -> list[str]:
    """The command line, as a user types it (after `python -m tau2train.run`)."""
    return [
        *cpu_train_args(root, model, user_url, EXPERIMENT, TRIAL),
        f"total_train_steps={TOTAL_STEPS}",
        # a model checkpoint and a recover checkpoint after step 2
        "saver.freq_epochs=null",
        f"saver.freq_steps={STOPPED_AFTER_STEP}",
        "recover.mode=auto",
        "recover.freq_epochs=null",
        "recover.freq_secs=null",
        f"recover.freq_steps={STOPPED_AFTER_STEP}",
        f"econfig.user_llm_max_retries={USER_RETRIES}",
        f"econfig.user_llm_outage_s={OUTAGE_LIMIT_S}",
    ]


# -- running it -------------------------------------------------------------------------------
@dataclasses.dataclass
class Process:
    """One `python -m tau2train.run` and everything it started (its own process group)."""

    popen: subprocess.Popen
    output: Path
    filter_log: Path

    @property
    def text(self) -> str:
        return plain(self.output)

    def processes(self) -> list[int]:
        """The live processes of this run: the command and everything it started."""
        return processes_with_env(str(self.filter_log))

    def kill(self) -> None:
        """SIGKILL to the whole group and to anything else of the run, then wait (bounded)
        until none of it is left: the safety net after a test."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(timeout=60)
        wait_for(lambda: not self.processes(), "the run's processes to die", 60)


def launch(args: list[str], workdir: Path, name: str) -> Process:
    env, filter_log = run_env(workdir, name)
    output = workdir / f"{name}.out"
    with open(output, "w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tau2train.run", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: AReaL's workers included
        )
    return Process(popen, output, filter_log)


@dataclasses.dataclass
class UserSimLog:
    """What the user-simulator double did to the first process."""

    failed: int = 0  # requests failed after the client's retries (one episode each)
    requests: int = 0  # requests while it failed 10% of them
    refused: int = 0  # requests answered 503 as the 30 s outage began
    outage_began: float = 0.0  # time.monotonic() of each outage's start
    down_for_good: float = 0.0
    user_url: str = ""


@dataclasses.dataclass
class Run:
    root: Path
    args: list[str]
    first: Process  # stopped by the user simulator down past the limit after step 2
    user: UserSimLog
    second: Process | None = None  # the same command again, run to the end
    left_behind: list[int] | None = None  # the first's processes alive once it had exited
    stopped_after_s: float | None = None  # from the user simulator down for good to the exit

    @property
    def fileroot(self) -> Path:
        return self.root / "experiments"

    @property
    def run_dir(self) -> Path:
        return self.fileroot / EXPERIMENT / TRIAL

    def areal_dir(self, kind: str) -> Path:
        return areal_run.areal_dir(self.fileroot, kind, EXPERIMENT, TRIAL)

    def main_log(self) -> str:
        return plain(self.areal_dir("logs") / "main.log")


def explain(process: Process):
    return lambda: f"; its output ends with:\n{process.text[-6000:]}"


@pytest.fixture(scope="module")
def initial_model():
    return load_model(tiny_qwen_dir())


def wait_for_step(process: Process, step: int) -> None:
    done = f"Train step {step}/"
    wait_for(lambda: process.popen.poll() is not None or done in process.text,
             f"AReaL to log {done!r}", RUN_DEADLINE_S, explain(process))
    assert process.popen.poll() is None, f"the run ended early{explain(process)()}"


def stop_failing(user) -> int:
    """The double fails no more requests; returns how many it failed, once the client has
    made every retry of them (so none of their episodes can still get through)."""
    user.fail_every = 0
    wait_for(lambda: user.failed_retries == user.failed * USER_RETRIES,
             "the retries of the failed requests", 60)
    return user.failed


def outage(user, log: UserSimLog) -> None:
    """The double down for OUTAGE_S as a server going down is: 503s while it shuts down
    (waited for: an episode is asking it), then nothing listening on its port; then back."""
    user.going_down = True
    wait_for(lambda: user.refused > 0, "an episode to ask the user simulator", RUN_DEADLINE_S)
    log.outage_began = time.monotonic()
    user.stop()
    user.going_down = False
    log.refused = user.refused
    time.sleep(OUTAGE_S)  # the outage itself, not a wait for something
    user.start()


@pytest.fixture(scope="module")
def run(tmp_path_factory, plain_user):
    """The first process, through the user simulator's failures and outage, stopped by it
    staying down past the limit once step STOPPED_AFTER_STEP is logged."""
    root = tmp_path_factory.mktemp("areal")
    plain_user.fail_every, plain_user.first_failure = FAIL_EVERY, FIRST_FAILURE
    args = train_args(root, tiny_qwen_dir(), plain_user.base_url + "/")
    first = launch(args, root, "first")
    state = Run(root, args, first, UserSimLog(user_url=plain_user.base_url + "/"))
    try:
        wait_for_step(first, 1)
        state.user.failed = stop_failing(plain_user)
        state.user.requests = plain_user.distinct
        outage(plain_user, state.user)
        wait_for_step(first, STOPPED_AFTER_STEP)
        plain_user.stop()  # down for good
        state.user.down_for_good = time.monotonic()
        first.popen.wait(timeout=STOP_DEADLINE_S)
        state.stopped_after_s = time.monotonic() - state.user.down_for_good
        state.left_behind = first.processes()  # the moment the command has exited
    finally:
        first.kill()
        plain_user.fail_every, plain_user.going_down = 0, False
    yield state
    if state.second is not None and state.second.popen.poll() is None:
        state.second.kill()


@pytest.fixture(scope="module")
def resumed(run: Run, plain_user) -> Run:
    """The user simulator back, and the same command again, run to its end."""
    plain_user.start()
    second = launch(run.args, run.root, "second")
    run.second = second
    try:
        second.popen.wait(timeout=RUN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        second.kill()
        pytest.fail(f"the restarted run did not finish in {RUN_DEADLINE_S} s{explain(second)()}")
    # AReaL tears its workers down itself; nothing of the run outlives it
    assert second.processes() == [], explain(second)()
    return run


# -- reading what it left ---------------------------------------------------------------------
def records(process: Process, kind: str) -> list[dict]:
    return areal_run.records(process.filter_log, kind)


def finished(process: Process) -> tuple[int, int]:
    return areal_run.finished(process.text, who="RemoteInfEngine")


def trajectories(run: Run) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run.run_dir / "generated").glob("*/*/*.json"))]


def load_model(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@torch.inference_mode()
def teacher_forced(model, row: dict) -> torch.Tensor:
    """log p(output token | everything before it) under `model`, for one row AReaL handed the
    filter: its input_ids and the positions of its output (loss-mask) tokens."""
    ids = torch.tensor([row["input_ids"]])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = torch.tensor(row["output_positions"])
    return logprobs[positions - 1, ids[0, positions]]


def output_text(row: dict, tokenizer) -> str:
    return tokenizer.decode([row["input_ids"][p] for p in row["output_positions"]], skip_special_tokens=True)


def saver_checkpoint(run: Run, global_step: int) -> Path:
    (path,) = run.areal_dir("checkpoints").glob(f"default/epoch*epochstep*globalstep{global_step}")
    return path


# -- the tests --------------------------------------------------------------------------------
def test_mode_train_runs_grpo_steps_with_areals_ppo_trainer(run, initial_model):
    out = run.first.text  # the trainer's output, its workers' included
    # AReaL's own trainer, engines and workers (the workers' command is ours: AReaL's RPC server)
    assert "Engine 'actor/0' (class: areal.engine.fsdp_engine.FSDPPPOActor)" in out
    assert "Engine 'rollout/0' (class: areal.engine.sglang_remote.RemoteSGLangEngine)" in out
    assert re.search(r"Starting worker rollout/0 .*: python -m helpers\.cpu_rollout_worker --port", out)
    assert "Proxy servers initialized" in out
    stats = step_stats(run.main_log())
    assert sorted(stats) == [1, 2], sorted(stats)
    for step, table in stats.items():
        # one group of 2 episodes, 2 completions each: 4 sequences, one per micro-batch
        assert table["ppo_actor/n_seqs"] == 4, step
        assert table["ppo_actor/update/num_micro_batches"] == 4, step
        assert table["ppo_actor/update/update_successful"] == 1, step
        assert table["ppo_actor/update/grad_norm"] > 0, step
        assert table["ppo_actor/advantages/max"] > 0 > table["ppo_actor/advantages/min"], step
        assert table["rollout/accepted"] >= 1, step
        # tau2train's per-domain stats, in the scope AReaL's own rollout reward uses
        assert 0.0 <= table["rollout/mock/pass^1"] <= 1.0 and "rollout/mock/reward" in table, step
        # the trainer recomputes exactly the log-probabilities the server reported
        assert abs(table["ppo_actor/update/behave_approx_kl/avg"]) < 1e-4, step
        # rows' rewards (tau2train's, after AReaL's turn discount): R - penalty and R
        spread = table["ppo_actor/task_reward/max"] - table["ppo_actor/task_reward/min"]
        assert spread == pytest.approx(PENALTY) or spread == pytest.approx(2 * PENALTY), step
    # the saver's checkpoint after step 2 holds trained weights
    checkpoint = saver_checkpoint(run, STOPPED_AFTER_STEP - 1)
    trained = load_model(checkpoint).state_dict()
    initial = initial_model.state_dict()
    assert trained.keys() == initial.keys()
    changed = [k for k in initial if not torch.equal(trained[k], initial[k])]
    assert len(changed) == len(initial), f"unchanged: {set(initial) - set(changed)}"


def test_episodes_go_through_areals_proxy_into_the_tau2_workflow(run):
    episodes = [e for e in records(run.first, "episode") if not e["failure"]]
    assert len(episodes) >= 2 * STOPPED_AFTER_STEP
    played = [t for t in trajectories(run) if not t["failure"]]  # the failed: test above
    assert len(played) >= len(episodes)
    tool_calls = 0
    for trajectory in played:
        task = trajectory["task_id"]
        assert trajectory["split"] == "all"
        # the policy's turns (after tau2's greeting): k forced tool calls M, parsed by AReaL's
        # proxy (SGLang's qwen25 parser) into calls that tau2's environment answered, then the
        # reply T that made the user end the chat
        agent = [m for m in trajectory["messages"] if m["role"] == "assistant"][1:]
        *calls, reply = agent
        assert reply["content"] == T and not reply.get("tool_calls"), task
        for message in calls:
            (call,) = message["tool_calls"]
            assert (call["name"], call["arguments"]) == ("create_task", {}), task
        tool_calls += len(calls)
        assert sum(m["role"] == "tool" for m in trajectory["messages"]) == len(calls), task
        assert trajectory["termination_reason"] == "user_stop"
        # tau2's evaluator scored it; each call was penalised for its missing arguments
        assert trajectory["reward"] in (0.0, 1.0) and trajectory["reward_info"], task
        assert list(trajectory["completion_rewards"].values()) == [-PENALTY] * len(calls) + [
            trajectory["reward"]
        ], task
        assert len(trajectory["format_problems"]) == len(calls), task
    assert tool_calls >= len(played) // 2  # each group's script has as many M as episodes
    # AReaL's own dump of what it trained on (rollout.dump_to_file)
    dumped = [
        json.loads(line)
        for path in (run.areal_dir("logs") / "rollout").glob("*/*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert dumped and {d["completion"] for d in dumped} == {M + "<|im_end|>", T + "<|im_end|>"}


def test_areal_hands_the_group_filter_one_row_per_completion(run):
    """What AReaL passes tau2train's GroupFilter (dynamic_filter_fn): the group's episodes'
    completions as rows of padded tensors, rewards after the turn discount; nothing marks
    which rows belong to which episode."""
    groups, episodes = records(run.first, "group"), records(run.first, "episode")
    assert groups
    for group in groups:
        # the episodes AReaL ran under this task id (its workflow context, which the filter
        # sees too), but for those that failed (dropped alone)
        own = [e for e in episodes if e["task_id"] == group["task_id"] and not e["failure"]]
        n = len(group["rows"])
        assert n == 2 * len(own)  # each episode made 2 completions: 2 rows
        length = max(len(r["input_ids"]) for r in group["rows"])
        assert group["keys"] == {
            "input_ids": {"shape": [n, length], "dtype": "torch.int64"},
            "loss_mask": {"shape": [n, length], "dtype": "torch.int64"},
            "logprobs": {"shape": [n, length], "dtype": "torch.float32"},
            "versions": {"shape": [n, length], "dtype": "torch.int64"},
            "attention_mask": {"shape": [n, length], "dtype": "torch.bool"},
            "rewards": {"shape": [n], "dtype": "torch.float32"},
        }
        # their per-completion rewards, discounted, are the rows' rewards
        assert 1 <= len(own) <= GROUP_SIZE
        discounted = []
        for episode in own:
            completion = episode["completion_rewards"]
            discounted += [sum(completion[i:]) for i in range(len(completion))]  # turn_discount 1
        assert sorted(group["rewards"]) == pytest.approx(sorted(discounted))
        # each episode's own reward is only its last row's, and nothing says which rows
        # those are: the filter takes the episodes' rewards from the workflow (rewards.py)
        assert max(group["rewards"]) == max(e["reward"] for e in own)


def test_the_group_filter_judges_groups_by_their_episodes_rewards(run):
    """group_filter.max_mean_reward=0.95 (the default): a whole group whose episodes all solved
    their task is dropped, though its rows' mean (penalties included) is below 0.95; any other
    whole group is kept. A group that lost an episode (dropped alone) reaches the filter with
    the other, fewer than group_filter.min_episodes=2: dropped. AReaL's own count of rejected
    groups shows these drops and the groups that lost every episode, which never reach it."""
    groups, episodes = records(run.first, "group"), records(run.first, "episode")
    failures = Counter(e["task_id"] for e in episodes if e["failure"])
    partial = [g for g in groups if g["task_id"] in failures]
    whole = [g for g in groups if g["task_id"] not in failures]
    rewards = {g["task_id"]: [e["reward"] for e in episodes if e["task_id"] == g["task_id"]] for g in whole}
    solved = [g for g in whole if set(rewards[g["task_id"]]) == {1.0}]
    unsolved = [g for g in whole if rewards[g["task_id"]] and 1.0 not in rewards[g["task_id"]]]
    assert solved and unsolved, rewards  # the forced script solves some mock tasks, not all
    for group in solved:
        assert sum(group["rewards"]) / len(group["rewards"]) < 0.95  # the rows would pass
        assert not group["accepted"], group["rewards"]
    assert all(g["accepted"] for g in unsolved)
    assert partial and not any(g["accepted"] for g in partial)
    assert all(len(g["rows"]) == 2 for g in partial)  # the one episode left: its 2 completions
    # AReaL's rollout worker counted exactly these verdicts, and a rejection for each group
    # that lost every episode (its count as of its last group: the controller's may lag it)
    accepted = sum(g["accepted"] for g in groups)
    assert accepted >= STOPPED_AFTER_STEP
    emptied = [task for task, failed in failures.items() if failed == GROUP_SIZE]
    assert finished(run.first) == (accepted, len(groups) - accepted + len(emptied))


def test_the_policy_served_after_an_update_is_the_trained_one(run, initial_model):
    """The CPU server's log-probabilities of the forced completions, which AReaL hands on with
    each row, are those of the weights of the row's version: the initial model's for version
    0, and after an update no longer; the update moved them the way the advantages point."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir())
    initial = initial_model
    rows = [r for g in records(run.first, "group") for r in g["rows"]]
    by_version: dict[int, list[dict]] = {}
    for row in rows:
        (version,) = set(row["versions"])  # one policy version per completion
        by_version.setdefault(version, []).append(row)
    assert 0 in by_version and max(by_version) >= 1, sorted(by_version)
    for row in by_version[0]:
        assert teacher_forced(initial, row) == pytest.approx(torch.tensor(row["logprobs"]), abs=1e-4)
    for version in sorted(v for v in by_version if v >= 1):
        for row in by_version[version]:
            served, before = torch.tensor(row["logprobs"]), teacher_forced(initial, row)
            assert (served - before).abs().max() > 1e-2, version
            # T rows have positive advantages, M rows negative ones (rewards R vs R - penalty)
            text = output_text(row, tokenizer)
            moved = float(served.sum() - before.sum())
            assert moved > 0 if text == T else moved < 0, (version, text, moved)


def test_a_user_simulator_down_past_the_limit_stops_the_run_and_everything_it_started(run):
    """Issue 23 (and 14's teardown): with the user simulator down for good, the command exits 1
    once econfig.user_llm_outage_s has passed, with one message naming the URL, and by then
    AReaL's workers and the inference server they started are gone."""
    first = run.first
    assert first.popen.returncode == 1, explain(first)()
    (line,) = [x for x in first.text.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: the user simulator at {run.user.user_url} (econfig.user_llm_base_url) "
                           "has not answered for"), line
    assert f"past econfig.user_llm_outage_s={OUTAGE_LIMIT_S}: training stopped" in line, line
    assert "rerun the same command: it resumes from the last checkpoint" in line, line
    assert OUTAGE_LIMIT_S <= run.stopped_after_s < STOP_DEADLINE_S
    assert run.left_behind == [], explain(first)()
    # the episodes waiting for it were stopped with the run, quietly: none failed, and no
    # traceback of theirs is printed
    assert "Agent task failed" not in first.text.split(f"Train step {STOPPED_AFTER_STEP}/")[1]
    assert "never retrieved" not in first.text


def test_failed_episodes_cost_their_groups_and_each_step_counts_them(run):
    """10% of the user simulator's requests failed after the client's retries: each failed
    its episode (cause user_sim), dropped alone, which left its group of 2 with 1 episode,
    fewer than group_filter.min_episodes=2: the group was dropped whole. Training went on, and
    the steps' stats count exactly the double's failures."""
    stats = step_stats(run.main_log())
    assert sorted(stats) == list(range(1, STOPPED_AFTER_STEP + 1))  # every step trained
    failed = run.user.failed
    assert failed >= 1 and run.user.requests >= FIRST_FAILURE
    assert failed == (run.user.requests - FIRST_FAILURE) // FAIL_EVERY + 1  # 10% from the 3rd
    total = {key: sum(table.get(f"rollout/tau2/{key}", 0.0) for table in stats.values())
             for key in ("episodes_failed/user_sim", "episodes_failed/timeout", "episodes_failed/evaluator",
                         "groups_dropped_whole")}
    assert total["episodes_failed/user_sim"] == failed, stats
    assert total["episodes_failed/timeout"] == total["episodes_failed/evaluator"] == 0
    assert 1 <= total["groups_dropped_whole"] <= failed  # two failures may share a group
    for table in stats.values():
        dropped = table["rollout/tau2/groups_dropped_whole"]
        # the share of the step's episodes lost with their groups: whole groups, so at least
        # the failed ones, and none when no group was dropped
        lost = table["rollout/tau2/episodes_lost"]
        assert (lost == 0) == (dropped == 0) and 0 <= lost <= 1, table
    # the episodes' own records say the same, and the sweep report totals those
    episodes = records(run.first, "episode")
    assert sum(e["failure"] == "user_sim" for e in episodes) == failed
    on_disk = [t for t in trajectories(run) if t["failure"]]
    assert [t["failure"] for t in on_disk] == ["user_sim"] * failed
    assert all("user LLM at" in t["error"] for t in on_disk)


def test_a_30_s_user_simulator_outage_pauses_training_and_loses_no_step(run):
    """Down for 30 s (under the limit) while step 2's episodes needed it: they waited and
    retried, step 2 trained on a whole group, and no episode failed for it."""
    out = run.first.text
    assert run.user.refused >= 1  # an episode was asking it as it went down
    assert f"is not answering; its episodes wait and retry (a training run stops once it has been down for " \
           f"econfig.user_llm_outage_s={OUTAGE_LIMIT_S} s)" in out
    stats = step_stats(run.main_log())
    step = stats[STOPPED_AFTER_STEP]
    assert step["ppo_actor/n_seqs"] == 2 * GROUP_SIZE and step["ppo_actor/update/update_successful"] == 1
    # every failure is one the double made on purpose before the outage (checked exactly above)
    failed = sum(table.get("rollout/tau2/episodes_failed/user_sim", 0.0) for table in stats.values())
    assert failed == run.user.failed


def test_a_stopped_run_restarted_with_the_same_command_resumes(resumed):
    run = resumed
    second = run.second
    assert second.popen.returncode == 0, explain(second)()
    out = second.text
    # AReaL found the recover checkpoint of the killed run (same experiment and trial) ...
    assert re.search(rf"Recovering from StepInfo\(.*global_step={STOPPED_AFTER_STEP}\b", out), explain(second)()
    # ... and did only what was left
    done = re.findall(r"Train step (\d+)/\d+ done", out)
    assert done == [str(TOTAL_STEPS)], done
    assert "Training completes!" in out
    assert sorted(step_stats(run.main_log())) == list(range(1, TOTAL_STEPS + 1))
    # its inference server was given the recovered weights, not the initial ones: what it
    # served for the group step 3 trained on are the log-probabilities of the weights the
    # saver wrote at step 2
    checkpoint = load_model(saver_checkpoint(run, STOPPED_AFTER_STEP - 1))
    first_group = records(second, "group")[0]
    for row in first_group["rows"]:
        assert teacher_forced(checkpoint, row) == pytest.approx(torch.tensor(row["logprobs"]), abs=1e-4)
    # and its episodes went on into the same run directory
    assert len(trajectories(run)) > len(records(run.first, "episode"))


def test_completions_after_a_resume_carry_the_recovered_version(resumed):
    """AReaL 1.0.4 alone tags them version 0: it sets the recovered version before it starts
    the rollout proxies; tau2train's trainer hands it to them once they run."""
    first_group = records(resumed.second, "group")[0]
    assert {v for row in first_group["rows"] for v in row["versions"]} == {STOPPED_AFTER_STEP}
