"""Issue 14: every way out of a run stops what it started. A start that fails once AReaL's
workers are up (AReaL's real trainer on CPU, helpers/areal_run.py), and Ctrl-C during an
evaluation, each exit non-zero with their message and leave no process of the run behind.
(SIGTERM during training, and a restart that reuses the same names and ports right after, are
tests/test_areal_training.py's; a user-sim record whose server is gone, tests/test_user_sim.py's.)

A run's processes are found by a marker in their environment, which every process the run
starts inherits, whatever its session or process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from helpers.areal_run import cpu_train_args, plain, processes_with_env, run_env
from helpers.cli import wait_for
from helpers.plain_user import PlainUserLLM
from helpers.tiny_qwen import tiny_qwen_dir

pytestmark = [pytest.mark.slow]

MARKER_ENV = "TAU2TEST_RUN_MARKER"


def start(args: list[str], workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path, str]:
    """`python -m tau2train.run ARGS` in its own session, its output to a file; and its marker."""
    marker = f"{MARKER_ENV}={uuid.uuid4().hex}"
    output = workdir / "run.out"
    with open(output, "w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tau2train.run", *args],
            cwd=workdir,
            env={**env, MARKER_ENV: marker.split("=", 1)[1]},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return popen, output, marker


def stop_leftovers(marker: str) -> None:
    for pid in processes_with_env(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.areal
@pytest.mark.timeout(900)
def test_a_start_that_fails_after_the_workers_are_up_leaves_nothing_behind(tmp_path):
    """The inference server cannot load its model (a wrong sglang.model_path): AReaL's actor
    worker and rollout worker are up when the trainer's constructor raises, which never reaches
    AReaL's own clean-up.

    Its own AReaL start, not test_areal_training's shared run: a start that fails cannot also
    be the run that trains, is stopped and resumes (the one case here where one run cannot
    show both results)."""
    user_sim = PlainUserLLM()
    user_sim.start()
    env, _ = run_env(tmp_path, "failed")
    args = [
        *cpu_train_args(tmp_path, tiny_qwen_dir(), user_sim.base_url + "/", "tau2-teardown", "fail0"),
        "total_train_steps=1",
        f"sglang.model_path={tmp_path}/no-such-model",
        "rollout.setup_timeout=20",
    ]
    popen, output, marker = start(args, tmp_path, env)
    try:
        popen.wait(timeout=800)
        left_behind = processes_with_env(marker)  # the moment the command has exited
        text = plain(output)
        assert "Worker actor/0 started" in text and "Worker rollout/0 started" in text, text[-4000:]
        assert popen.returncode == 1, text[-4000:]
        assert "server launch failed" in text, text[-4000:]
        assert left_behind == [], text[-4000:]
    finally:
        if popen.poll() is None:
            popen.kill()
        stop_leftovers(marker)
        user_sim.stop()


def test_ctrl_c_during_an_evaluation_stops_it_and_everything_it_started(llm, tmp_path):
    args = [
        "mode=eval",
        f"eval.agent_base_url={llm.base_url}",
        f"econfig.user_llm_base_url={llm.base_url}",
        "econfig.user_llm=user",
        f"cluster.fileroot={tmp_path}/exp",
        "eval.agent_model=slow",  # every agent turn takes SLOW_SECONDS: episodes are in flight
    ]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline"}
    popen, output, marker = start(args, tmp_path, env)
    try:
        # tau2's progress bar is up: the episodes have started
        wait_for(lambda: "episode/s" in output.read_text(), "the evaluation to start", 180,
                 lambda: output.read_text()[-3000:])
        popen.send_signal(signal.SIGINT)
        popen.wait(timeout=120)
        left_behind = processes_with_env(marker)
        text = plain(output)
        assert popen.returncode == 128 + signal.SIGINT, text[-3000:]
        assert text.rstrip().splitlines()[-1] == "stopped by Ctrl-C", text[-3000:]
        assert left_behind == []
    finally:
        if popen.poll() is None:
            popen.kill()
        stop_leftovers(marker)
