"""AReaL's own PPOTrainer, end to end on this CPU machine: `python -m tau2train.run mode=train`
trains the tiny Qwen3 (tau2train/serving/tiny_qwen.py) with GRPO on τ²'s mock domain, through a user
simulator that fails and goes down.

Everything is the real thing (tau2train's CLI, composition and validation, AReaL's
PPOTrainer, local scheduler, RPC workers, FSDP actor, RemoteSGLangEngine, rollout proxy,
tool-call parser, staleness control, saver and recover checkpoints, tau2train's τ² workflow,
reward rule, group filter, failure stats and user-simulator watch, tau2's environment,
orchestrator and evaluator) except two test doubles: the inference server is
helpers/cpu_sglang.py (SGLang's HTTP protocol over the HF model, started by AReaL's rollout
worker through helpers/cpu_rollout_worker.py) and the user simulator is helpers/plain_user.py's
(TaskUser: its opening states its task's instructions).

The policy's completions are forced (helpers/areal_run.py, MIXED_FORCING): the two episodes of
a group differ, one [G, T] (G: create_task_1's gold call), the other [M, T] (M: create_task
without arguments, a format penalty); T is a reply after which the user ends the chat. The
mock tasks come in AReaL's fixed order (impossible_task_1, create_task_1, create_task_1_nl_eval,
update_task_1, ...): create_task_1's group scores 1 and 0 (rows' rewards after AReaL's turn
discount of 1: [1, 1] and [-penalty, 0]) and trains step 1; create_task_1_nl_eval's, forced
[M, T] twice, solves its task and is dropped; update_task_1's scores 0 and 0 ([0, 0] and
[-penalty, 0]) and trains step 2. Every step has advantages of both signs.

A step that happens is not a step that helps: for every trained step the module checks, from
what the trainer trained on (helpers/cpu_rollout_worker.py's TAU2TEST_TRAIN_LOG), what the
server generated and the weights it served before and after the update (TAU2TEST_SERVER_LOG,
TAU2TEST_KEEP_WEIGHTS), that the completions with a positive advantage gained log-probability
relative to those with a negative one, that the tokens trained are exactly those the server
generated, and that each completion carries its own episode's reward. The figures go to
<basetemp>/areal*/direction.json (and the tests' output).

One run serves all the tests, which keeps the module at two AReaL start-ups (~3.5 min each on
2 cores). The user simulator (failing, then down), in the first process:
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
does step 3. Runtime: ~9-10 minutes on 2 cores (more on a loaded machine); memory: ~10 GB (PSS summed over the run's
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
    MIXED_FORCING,
    PENALTY,
    REPO,
    G,
    M,
    T,
    cpu_train_args,
    jsonl,
    plain,
    processes_with_env,
    run_env,
    step_stats,
    traced,
)
from helpers.cli import wait_for
from helpers.plain_user import OPENING, PlainUserLLM
from helpers.scripted_llm import Turn
from helpers.served import served
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
    name: str

    @property
    def text(self) -> str:
        return plain(self.output)

    def traced(self, kind: str) -> list[dict]:
        """The CPU server's records ("generation", "update") or the trainer's ("train")."""
        server_log, train_log, _ = traced(self.output.parent, self.name)
        return jsonl(train_log, "update") if kind == "train" else jsonl(server_log, kind)

    def weights(self, version: int) -> Path:
        """The weights of `version` as this run's server loaded them (kept by it)."""
        return traced(self.output.parent, self.name)[2] / f"weight_update_v{version}"

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


class TaskUser(PlainUserLLM):
    """helpers/plain_user.py's user, who says what it wants: its opening is OPENING followed by
    the instructions of its task's <scenario>, as a customer states their request (the rest,
    failures and outages included, is PlainUserLLM's)."""

    def _user_turn(self, messages: list[dict], retry: int = 0) -> Turn:
        turn = super()._user_turn(messages, retry)
        if turn.text != OPENING:
            return turn
        system = next((m.get("content") or "" for m in messages if m["role"] == "system"), "")
        scenario = system.split("<scenario>", 1)[-1].split("</scenario>", 1)[0]
        instructions = " ".join(scenario.split("Instructions:", 1)[-1].split())
        return Turn(text=f"{OPENING} {instructions}")


def launch(args: list[str], workdir: Path, name: str) -> Process:
    env, filter_log = run_env(workdir, name, MIXED_FORCING, trace=True)
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
    return Process(popen, output, filter_log, name)


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


@pytest.fixture(scope="module")
def first_steps(run, initial_model) -> list[TrainedStep]:
    """The first process's steps (1 and 2) with their figures."""
    return analysed(run.first, run.root, initial_model)


@pytest.fixture(scope="module")
def task_user():
    """The user simulator: helpers/plain_user.py's, opening with its task's instructions."""
    yield from served(TaskUser())


def wait_for_step(process: Process, step: int) -> None:
    done = f"Train step {step}/"
    wait_for(lambda: process.popen.poll() is not None or done in process.text,
             f"AReaL to log {done!r}", RUN_DEADLINE_S, explain(process))
    assert process.popen.poll() is None, f"the run ended early{explain(process)()}"


def wait_for_accepted_groups(process: Process, n: int) -> None:
    """Until the group filter has accepted n groups: one a step (train_dataset.batch_size=1), so
    step n's batch is complete; with rollout.max_head_offpolicyness=0 step n+1's episodes start
    only once step n's weights are on the server."""
    wait_for(lambda: process.popen.poll() is not None
             or sum(r["accepted"] for r in records(process, "group")) >= n,
             f"the group filter to accept {n} groups", RUN_DEADLINE_S, explain(process))
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
def run(tmp_path_factory, task_user):
    """The first process, through the user simulator's failures and outage, stopped by it
    staying down past the limit once step STOPPED_AFTER_STEP's group is accepted."""
    root = tmp_path_factory.mktemp("areal")
    task_user.fail_every, task_user.first_failure = FAIL_EVERY, FIRST_FAILURE
    args = train_args(root, tiny_qwen_dir(), task_user.base_url + "/")
    first = launch(args, root, "first")
    state = Run(root, args, first, UserSimLog(user_url=task_user.base_url + "/"))
    try:
        wait_for_step(first, 1)
        state.user.failed = stop_failing(task_user)
        state.user.requests = task_user.distinct
        outage(task_user, state.user)
        # step 2's group is in: step 3's episodes wait for the weights step 2 trains, so none
        # of them can reach the user simulator before it is down (waiting for step 2's log
        # line instead raced them: on an idle machine step 3's episodes could finish first)
        wait_for_accepted_groups(first, STOPPED_AFTER_STEP)
        task_user.stop()  # down for good
        state.user.down_for_good = time.monotonic()
        first.popen.wait(timeout=STOP_DEADLINE_S)  # it exits by itself, or the test fails here
        state.left_behind = first.processes()  # the moment the command has exited
    finally:
        first.kill()
        task_user.fail_every, task_user.going_down = 0, False
    yield state
    if state.second is not None and state.second.popen.poll() is None:
        state.second.kill()


@pytest.fixture(scope="module")
def resumed(run: Run, task_user) -> Run:
    """The user simulator back, and the same command again, run to its end."""
    task_user.start()
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
    positions = torch.tensor(row["output_positions"])
    first = int(positions.min()) - 1  # the logits from the one predicting the first output token on
    logits = model(input_ids=ids, logits_to_keep=ids.shape[1] - first).logits[0].float()
    return torch.log_softmax(logits, dim=-1)[positions - 1 - first, ids[0, positions]]


def saver_checkpoint(run: Run, global_step: int) -> Path:
    (path,) = run.areal_dir("checkpoints").glob(f"default/epoch*epochstep*globalstep{global_step}")
    return path


# -- what each step trained on, and what it did to the served policy ---------------------------
EOS = "<|im_end|>"
GOLD_CALL = ["create_task", {"user_id": "user_1", "title": "Important Meeting"}]  # G, parsed
WRONG_CALL = ["create_task", {}]  # M, parsed


def episode_script(episode: dict) -> str:
    """The script an episode followed, by the calls it made (a task's message history may hold
    other calls): "gold" (G), "wrong" (M), or "?"."""
    calls = episode["tool_calls"]
    if GOLD_CALL in calls and WRONG_CALL not in calls:
        return "gold"
    return "wrong" if WRONG_CALL in calls and GOLD_CALL not in calls else "?"


@dataclasses.dataclass
class TrainedRow:
    """One completion a step trained on: the trainer's row (its tokens, the positions the loss
    trains, their advantages, its reward), the server's /generate that made it, and its
    episode, found by the script its tokens follow."""

    trained: dict
    generation: dict | None  # None: no /generate made these tokens
    script: str  # "gold" ([G, T]) or "wrong" ([M, T])
    turn: int  # the completion's index in its episode
    episode: dict | None  # None: its group has no (or several) episodes of that script

    @property
    def own_reward(self) -> float:
        """Its episode's reward for it: the episode's completion rewards from it on (AReaL's
        turn discount is 1); NaN without its episode."""
        return sum(self.episode["completion_rewards"][self.turn :]) if self.episode else float("nan")

    @property
    def tokens(self) -> int:
        return len(self.trained["trained_positions"])


@dataclasses.dataclass
class TrainedStep:
    """One PPO update: the trainer's record, the group it trained on and that group's episodes."""

    number: int  # AReaL's global step, 1-based
    process: Process
    update: dict
    group: dict  # the group filter's record of the group
    episodes: list[dict]
    rows: list[TrainedRow]
    figures: dict = dataclasses.field(default_factory=dict)  # what direction() measured

    @property
    def task(self) -> str:
        return self.episodes[0]["tau2_task"] if self.episodes else "?"


def script_of(generation: dict, tokenizer) -> tuple[str, int]:
    """The script ("gold", "wrong") and turn a completion follows, read from its tokens."""
    output = tokenizer.decode(generation["output_ids"])
    prompt = tokenizer.decode(generation["input_ids"])
    if output in (G + EOS, M + EOS):
        return ("gold" if output == G + EOS else "wrong"), 0
    assert output == T + EOS, output
    said = {"gold": prompt.count(G), "wrong": prompt.count(M)}
    (script,) = [s for s, n in said.items() if n]  # an episode follows one script
    return script, said[script]


def trained_steps(process: Process, tokenizer) -> list[TrainedStep]:
    """Every update the process's trainer made, matched with the server's generations, the
    group filter's record of the group and that group's episodes."""
    generations = [g for g in process.traced("generation") if "output_ids" in g]
    accepted = [g for g in records(process, "group") if g["accepted"]]
    episodes = [e for e in records(process, "episode") if not e["failure"] and not e["is_eval"]]
    steps = []
    for update in process.traced("train"):
        tokens = sorted(tuple(r["input_ids"]) for r in update["rows"])
        groups = [g for g in accepted if sorted(tuple(r["input_ids"]) for r in g["rows"]) == tokens]
        assert len(groups) == 1, f"version {update['version']}: the trainer's rows are no group the filter kept"
        (group,) = groups
        own = [e for e in episodes if e["task_id"] == group["task_id"]]
        rows = []
        for row in update["rows"]:
            made = [g for g in generations if g["input_ids"] + g["output_ids"] == row["input_ids"]]
            generation = made[0] if made else None
            script, turn = script_of(generation, tokenizer) if generation else ("?", -1)
            mine = [e for e in own if episode_script(e) == script]
            rows.append(TrainedRow(row, generation, script, turn, mine[0] if len(mine) == 1 else None))
        steps.append(TrainedStep(update["version"] + 1, process, update, group, own, rows))
    return steps


def direction(step: TrainedStep, before, after) -> dict:
    """The step's figures: per completion, its trained tokens, rewards, advantage, and the
    change of its teacher-forced log-probability (summed over its trained tokens) from the
    weights served before the update (`before`) to those served after it (`after`); their
    means over the completions whose reward is above, and below, the step's mean reward per
    trained token (GRPO's advantage under actor.adv_norm mean_level=batch: positive, negative).
    """
    tokens = sum(r.tokens for r in step.rows)
    mean = sum(r.own_reward * r.tokens for r in step.rows) / tokens
    rows = []
    for row in step.rows:
        positions = {"input_ids": row.trained["input_ids"], "output_positions": row.trained["trained_positions"]}
        was, now = teacher_forced(before, positions), teacher_forced(after, positions)
        served = torch.tensor(row.generation["output_logprobs"]) if row.generation else torch.tensor([])
        rows.append(
            {
                "script": row.script,
                "turn": row.turn,
                "tokens": row.tokens,
                "generated": len(row.generation["output_ids"]) if row.generation else None,
                "reward": row.trained["reward"],
                "own_reward": row.own_reward,
                "expected_sign": (row.own_reward > mean) - (row.own_reward < mean),
                "advantage": sum(row.trained["advantages"]) / max(row.tokens, 1),
                "advantage_signs": sorted({(a > 0) - (a < 0) for a in row.trained["advantages"]}),
                "dlogprob": float((now - was).sum()),
                "served_vs_before": float((served - was).abs().max()) if served.shape == was.shape else None,
            }
        )

    def mean_of(sign):
        picked = [r["dlogprob"] for r in rows if r["expected_sign"] == sign]
        return sum(picked) / len(picked) if picked else None

    return {
        "step": step.number,
        "process": step.process.name,
        "task": step.task,
        "episode_rewards": {episode_script(e): e["reward"] for e in step.episodes},
        "loss_mask_sum": step.update["loss_mask_sum"],
        "generated_tokens": sum(r["generated"] or 0 for r in rows),
        "mean_reward_per_token": mean,
        "mean_dlogprob_positive": mean_of(1),
        "mean_dlogprob_negative": mean_of(-1),
        "rows": rows,
    }


def analysed(process: Process, root: Path, initial) -> list[TrainedStep]:
    """The process's steps with their figures (also written to <root>/<name>.direction.json
    and printed)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir())
    steps = trained_steps(process, tokenizer)
    models = {0: initial}
    for step in steps:
        for version in (step.number - 1, step.number):
            if version not in models:
                models[version] = load_model(process.weights(version))
        step.figures = direction(step, models[step.number - 1], models[step.number])
    figures = [s.figures for s in steps]
    (root / f"{process.name}.direction.json").write_text(json.dumps(figures, indent=1))
    for f in figures:
        print(
            f"step {f['step']} ({f['task']}, episode rewards {f['episode_rewards']}): mean Δlogprob "
            f"positive {f['mean_dlogprob_positive']} vs negative {f['mean_dlogprob_negative']}; loss "
            f"mask {f['loss_mask_sum']} vs generated {f['generated_tokens']} tokens; rewards "
            + ", ".join(f"{r['script']}[{r['turn']}]={r['reward']}" for r in f["rows"])
        )
    return steps


def check_direction(step: TrainedStep) -> None:
    """Check 1: the completions with a positive advantage gained log-probability relative to
    those with a negative one, from the weights served before the update to those after; the
    trainer's advantages have the signs the rewards give them; the weights before are those
    that served the completions."""
    f = step.figures
    for row in f["rows"]:
        assert row["served_vs_before"] is not None and row["served_vs_before"] < 1e-4, (step.number, row)
        assert row["advantage_signs"] == [row["expected_sign"]], (step.number, row)
    assert f["mean_dlogprob_positive"] is not None and f["mean_dlogprob_negative"] is not None, f
    assert f["mean_dlogprob_positive"] > f["mean_dlogprob_negative"], f


def check_tokens(step: TrainedStep) -> None:
    """Check 2: the tokens a step trains are exactly the policy's completions: each row is a
    prompt and the tokens the server generated after it, the loss trains exactly those, and
    the loss mask's sum is the number of tokens generated."""
    for row in step.rows:
        assert row.generation is not None, f"step {step.number}: a trained row no /generate made"
        start, end = len(row.generation["input_ids"]), len(row.trained["input_ids"])
        assert end - start == len(row.generation["output_ids"])
        assert row.trained["trained_positions"] == list(range(start, end)), (step.number, row.script, row.turn)
    generated = sum(len(r.generation["output_ids"]) for r in step.rows)
    assert step.update["loss_mask_sum"] == generated, (step.number, step.update["loss_mask_sum"], generated)


def check_rewards(step: TrainedStep) -> None:
    """Check 3: the group's episodes followed different scripts, and each completion carries
    the reward of its own episode (not of the other's)."""
    assert sorted(map(episode_script, step.episodes)) == ["gold", "wrong"], step.episodes
    for row in step.rows:
        assert row.episode is not None, (step.number, row.script)
        # tau2train's per-completion rewards: the gold call is well formed, M is penalised
        first = 0.0 if row.script == "gold" else -PENALTY
        assert row.episode["completion_rewards"] == [first, row.episode["reward"]], row.episode
        assert row.trained["reward"] == pytest.approx(row.own_reward), (step.number, row.script, row.turn)


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
    updates = {u["version"] + 1: u for u in run.first.traced("train")}  # what the trainer trained on
    assert sorted(updates) == [1, 2], sorted(updates)
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
        # rows' rewards (tau2train's, after AReaL's turn discount), those of the rows the trainer
        # trained on: the wrong episode's [-penalty, 0] (its task unsolved: the group was kept)
        # and the gold one's [R, R] (R = 1 for create_task_1, else 0)
        rewards = [row["reward"] for row in updates[step]["rows"]]
        assert table["ppo_actor/task_reward/min"] == pytest.approx(min(rewards)) == pytest.approx(-PENALTY), step
        assert table["ppo_actor/task_reward/max"] == pytest.approx(max(rewards)), step
        assert max(rewards) in (0.0, 1.0), step
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
        # the policy's turns (after the user's opening: before it come tau2's greeting, or the
        # task's message history): k forced tool calls G or M, parsed by AReaL's proxy
        # (SGLang's qwen25 parser) into calls that tau2's environment answered, then the reply T
        # that made the user end the chat
        messages = trajectory["messages"]
        (opening,) = [i for i, m in enumerate(messages) if m["role"] == "user" and OPENING in (m["content"] or "")]
        agent = [m for m in messages[opening:] if m["role"] == "assistant"]
        *calls, reply = agent
        assert reply["content"] == T and not reply.get("tool_calls"), task
        penalties = []
        for message in calls:
            (call,) = message["tool_calls"]
            assert [call["name"], call["arguments"]] in (GOLD_CALL, WRONG_CALL), task
            penalties.append(0.0 if [call["name"], call["arguments"]] == GOLD_CALL else -PENALTY)
        tool_calls += len(calls)
        assert sum(m["role"] == "tool" for m in messages[opening:]) == len(calls), task
        assert trajectory["termination_reason"] == "user_stop"
        # tau2's evaluator scored it; each M was penalised for its missing arguments, G not
        assert trajectory["reward"] in (0.0, 1.0) and trajectory["reward_info"], task
        assert list(trajectory["completion_rewards"].values()) == penalties + [trajectory["reward"]], task
        assert len(trajectory["format_problems"]) == penalties.count(-PENALTY), task
    assert tool_calls >= len(played) // 2  # each group's scripts have as many calls as episodes
    # AReaL's own dump of what it trained on (rollout.dump_to_file)
    dumped = [
        json.loads(line)
        for path in (run.areal_dir("logs") / "rollout").glob("*/*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert dumped and {d["completion"] for d in dumped} == {G + EOS, M + EOS, T + EOS}


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
    whole group is kept, one that solved it once (mean 0.5) as one that never did. A group that lost an episode (dropped alone) reaches the filter with
    the other, fewer than group_filter.min_episodes=2: dropped. AReaL's own count of rejected
    groups shows these drops and the groups that lost every episode, which never reach it."""
    groups, episodes = records(run.first, "group"), records(run.first, "episode")
    failures = Counter(e["task_id"] for e in episodes if e["failure"])
    partial = [g for g in groups if g["task_id"] in failures]
    whole = [g for g in groups if g["task_id"] not in failures]
    rewards = {g["task_id"]: [e["reward"] for e in episodes if e["task_id"] == g["task_id"]] for g in whole}
    solved = [g for g in whole if set(rewards[g["task_id"]]) == {1.0}]
    unsolved = [g for g in whole if rewards[g["task_id"]] and 1.0 not in rewards[g["task_id"]]]
    mixed = [g for g in whole if set(rewards[g["task_id"]]) == {0.0, 1.0}]
    # the forced scripts solve some mock tasks in both episodes, some in one, some in none
    assert solved and unsolved and mixed, rewards
    for group in solved:
        assert sum(group["rewards"]) / len(group["rewards"]) < 0.95  # the rows would pass
        assert not group["accepted"], group["rewards"]
    assert all(g["accepted"] for g in unsolved + mixed)
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
    0, and after an update no longer (which way each step moved them: the tests below)."""
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


def test_each_step_raises_its_positive_advantage_completions_over_its_negative_ones(first_steps):
    """Check 1 (a trainer that pushes the policy the wrong way fails it): per step, the
    completions' teacher-forced log-probabilities on the weights the server served before the
    update and after it; the mean change of those with a positive advantage exceeds that of
    those with a negative one."""
    assert [s.number for s in first_steps] == list(range(1, STOPPED_AFTER_STEP + 1))
    for step in first_steps:
        check_direction(step)


def test_a_step_trains_exactly_the_tokens_the_policy_generated(first_steps):
    """Check 2 (a trainer that trains the user's, the tools' or the system prompt's tokens, or
    misplaces the loss mask, fails it)."""
    for step in first_steps:
        assert len(step.rows) == 2 * GROUP_SIZE, step.number
        check_tokens(step)


def test_each_completion_is_credited_its_own_episodes_reward(first_steps):
    """Check 3 (a trainer that credits a reward to the wrong completion fails it): each step's
    group holds a gold-forced and a wrong-forced episode, and each completion carries its own
    episode's reward; create_task_1's gold episode scored 1 and its wrong one 0 (step 1)."""
    for step in first_steps:
        check_rewards(step)
    rewards = {s.task: s.figures["episode_rewards"] for s in first_steps}
    assert rewards.get("create_task_1") == {"gold": 1.0, "wrong": 0.0}, rewards


def test_a_user_simulator_down_past_the_limit_stops_the_run_and_everything_it_started(run):
    """A user simulator down past the limit, and the teardown: with it down for good, the command exits 1
    once econfig.user_llm_outage_s has passed, with one message naming the URL, and by then
    AReaL's workers and the inference server they started are gone."""
    first = run.first
    assert first.popen.returncode == 1, explain(first)()
    (line,) = [x for x in first.text.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: the user simulator at {run.user.user_url} (econfig.user_llm_base_url) "
                           "has not answered for"), line
    assert f"past econfig.user_llm_outage_s={OUTAGE_LIMIT_S}: training stopped" in line, line
    assert "rerun the same command: it resumes from the last checkpoint" in line, line
    # by the run's own watch (it probes every 5 s and counts from its first failed probe), it
    # waited out the limit; that it then exited by itself is the fixture's bounded wait
    # (STOP_DEADLINE_S), not a clock compared here
    assert int(re.search(r"has not answered for (\d+) s", line).group(1)) >= OUTAGE_LIMIT_S, line
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


def test_the_step_after_a_resume_helps_too(resumed, initial_model):
    """Checks 1-3 on step 3, trained by the resumed process on the recovered weights (served
    as weight_update_v2 by its own server)."""
    (step,) = analysed(resumed.second, resumed.root, initial_model)
    assert step.number == TOTAL_STEPS
    check_direction(step)
    check_tokens(step)
    check_rewards(step)
