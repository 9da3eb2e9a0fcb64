"""Every way out of a run stops what it started: Ctrl-C during an evaluation exits
non-zero with its message and leaves no process of the run behind; SIGTERM during training
unwinds the trainer as Ctrl-C does. (A start that fails once AReaL's workers are up is
tests/test_areal_teardown.py's; AReaL's trainer unwound mid-step, by a user simulator down past
its limit, which raises in the main thread as SIGTERM's handler does, and a restart that reuses
the same names and ports right after, tests/test_areal_training.py's; a user-sim record whose
server is gone, tests/test_user_sim.py's.)

A run's processes are found by a marker in their environment (helpers/marked_run.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from helpers.areal_run import plain, processes_with_env
from helpers.cli import wait_for
from helpers.marked_run import start, stop_leftovers
from helpers.recording_trainer import RECORD_NAME

pytestmark = [pytest.mark.slow]


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


def test_sigterm_during_training_unwinds_the_trainer_and_exits_143(llm, tmp_path):
    """SIGTERM to the command alone (as `kill <pid>`, a job scheduler or systemd send it) while
    the trainer works (the recording stand-in, held as a long training holds): the trainer's
    `with` is left as for Ctrl-C, the command exits 128 + SIGTERM with one line saying so."""
    args = [
        "mode=train", "trainer._target_=helpers.recording_trainer.RecordingTrainer", "trainer.cpu_only=true",
        f"econfig.user_llm_base_url={llm.base_url}/", f"cluster.fileroot={tmp_path}/exp",
    ]
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline",
           "PYTHONPATH": tests, "HOLD_FIRST_TRAINING": "1"}
    record = tmp_path / "exp" / "tau2-qwen3-1.7b-airline" / "trial0" / RECORD_NAME
    popen, output, marker = start(args, tmp_path, env)
    try:
        wait_for(lambda: record.exists() or popen.poll() is not None, "the trainer to start", 180,
                 lambda: plain(output)[-3000:])
        popen.send_signal(signal.SIGTERM)
        popen.wait(timeout=60)
        text = plain(output)
        assert json.loads(record.read_text())["calls"] == 1, text[-3000:]
        assert popen.returncode == 128 + signal.SIGTERM, text[-3000:]
        assert text.rstrip().splitlines()[-1] == "stopped by SIGTERM", text[-3000:]
        assert processes_with_env(marker) == []
    finally:
        if popen.poll() is None:
            popen.kill()
        stop_leftovers(marker)
