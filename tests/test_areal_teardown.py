"""Every way out of a run stops what it started, AReaL's part: a start that fails once AReaL's
workers are up (AReaL's real trainer on CPU, helpers/areal_run.py) exits non-zero with its
message and leaves no process of the run behind. (Ctrl-C during an evaluation is tests/test_teardown.py's; SIGTERM during training, and a
restart that reuses the same names and ports right after, tests/test_areal_training.py's.)"""

from __future__ import annotations

import pytest
from helpers.areal_run import cpu_train_args, plain, processes_with_env, run_env
from helpers.marked_run import start, stop_leftovers
from helpers.plain_user import PlainUserLLM
from tau2train.serving.tiny_qwen import tiny_qwen_dir

pytestmark = [pytest.mark.areal, pytest.mark.slow]


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
