"""Issue 14: every way out of a run stops what it started: Ctrl-C during an evaluation exits
non-zero with its message and leaves no process of the run behind. (A start that fails once
AReaL's workers are up is tests/test_areal_teardown.py's; SIGTERM during training, and a restart
that reuses the same names and ports right after, tests/test_areal_training.py's; a user-sim
record whose server is gone, tests/test_user_sim.py's.)

A run's processes are found by a marker in their environment (helpers/marked_run.py)."""

from __future__ import annotations

import os
import signal

import pytest
from helpers.areal_run import plain, processes_with_env
from helpers.cli import wait_for
from helpers.marked_run import start, stop_leftovers

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
