"""`mode=train` as a user runs it: everything up to AReaL's trainer is real; the trainer is a
recording stand-in injected through `trainer._target_` (AReaL's engines need GPUs)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from helpers.cli import USER_SIM, run_cli, slurm_overrides
from helpers.recording_trainer import RECORD_NAME

# the markers `make test PYTEST_ARGS="-m 'not slurm and not slow'"` leaves out
pytestmark = [pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
# the stand-in runs here without GPUs, as a CPU rehearsal would (trainer.cpu_only)
STAND_IN = ["trainer._target_=helpers.recording_trainer.RecordingTrainer", "trainer.cpu_only=true"]


def test_training_reaches_the_trainer_with_the_composed_config_and_workflow(cli, tmp_path):
    result = cli(
        *STAND_IN, USER_SIM, f"cluster.fileroot={tmp_path}/exp",
        "reward.format_penalty=0.3", "reward.turn_discount=0.9", "group_filter.max_mean_reward=0.8",
        "group_filter.min_episodes=3", cwd=tmp_path, env={"PYTHONPATH": str(TESTS)},
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "exp" / "tau2-qwen3-1.7b-airline" / "trial0"
    call = json.loads((run_dir / RECORD_NAME).read_text())

    assert call["config_type"] == "tau2train.schemas.env.PPOConfig"
    config = call["config"]
    assert "reward" not in config  # ours: AReaL reads it through its own keys
    assert (config["actor"]["reward_scaling"], config["actor"]["reward_bias"]) == (10.0, -0.5)
    assert config["rollout"]["agent"]["turn_discount"] == 0.9
    assert config["actor"]["path"] == "Qwen/Qwen3-1.7B"
    assert "trainer" not in config and "eval" not in config  # ours, not AReaL's
    # a fresh admin key for AReaL's rollout proxy (it refuses its default off loopback), made
    # in the trainer's process: in no output and no record of the run
    admin_key = config["rollout"]["agent"]["admin_api_key"]
    assert admin_key != "areal-admin-key" and len(admin_key) >= 32
    assert admin_key not in result.stdout + result.stderr
    written = [p for p in (tmp_path / "exp").rglob("*") if p.is_file() and p.name != RECORD_NAME]
    assert not [p for p in written if admin_key in p.read_text(errors="replace")]

    assert len(call["train_rows"]) == 150  # airline train: 30 tasks, repeated to >= 128
    assert call["train_rows"][0] == {"task_id": "0", "split": "train"}
    assert {r["split"] for r in call["valid_rows"]} == {"test"}

    assert call["workflow"] == call["eval_workflow"] == "tau2train.rollout.workflow.Tau2AgentWorkflow"
    assert call["workflow_types"] == ["Tau2AgentWorkflow", "Tau2AgentWorkflow"]
    kwargs, eval_kwargs = call["workflow_kwargs"], call["eval_workflow_kwargs"]
    assert kwargs["reward"] == {"terms": [{"_target_": "tau2train.rollout.reward_terms.tau2", "weight": 1.0, "args": {}}],
                                "format_penalty": 0.3, "turn_discount": 0.9, "scaling": 10.0, "bias": -0.5}
    assert eval_kwargs["reward"] == kwargs["reward"]
    assert kwargs["econfig"]["user_llm_base_url"] == "http://127.0.0.1:8000/v1/"
    assert kwargs["gen_args"] == {"temperature": 1.0, "top_p": 1.0, "max_completion_tokens": 8192}
    assert eval_kwargs["gen_args"]["temperature"] == 0.6
    assert kwargs["timeout"] == 600.0
    assert kwargs["dump_dir"] == str(run_dir / "generated")
    assert kwargs["max_concurrent_episodes"] == 256 * config["gconfig"]["n_samples"]

    # a group of 8 trains on what is left of it after failures, if at least 3 are
    assert kwargs["group_size"] == 8 and kwargs["min_episodes"] == 3
    # ... and its rewards as they are: the batch's mean is the baseline by default (AReaL's τ² example)
    assert call["dynamic_filter"] == {"type": "GroupFilter", "max_mean_reward": 0.8, "min_mean_reward": None,
                                      "min_episodes": 3, "baseline": None, "judge_by": "shaped"}
    assert call["filter_keeps_solved_group"] is False


def test_training_here_without_the_gpus_stops_and_points_to_dry_run(cli, tmp_path):
    result = cli(
        USER_SIM, f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cluster.n_gpus_per_node=8: the layout needs 8 GPUs on this machine and it has 0",
        "  valid: at most 0 on this machine, or a cluster with the GPUs",
        "  fix:   check the plan with dry_run=true, then run where the GPUs are (cluster=slurm); "
        "trainer.cpu_only=true for a CPU rehearsal",
    ]
    assert not (tmp_path / "exp").exists()


def test_a_trainer_that_cannot_be_imported_is_named(cli, tmp_path):
    result = cli("trainer._target_=areal.NoSuchTrainer", USER_SIM, f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: trainer._target_='areal.NoSuchTrainer': cannot be imported")


@pytest.mark.parametrize("container", ["none", "apptainer"])
def test_slurm_workers_are_placed_as_the_scheduling_spec_says(container, tmp_path):
    """AReaL builds its Slurm scheduler with Apptainer whatever the spec says; tau2train's trainer
    passes the spec's container settings on, and host workers run this interpreter."""
    import sys

    from tau2train.config.compose import compose
    from tau2train.launch.train import make_storage_dirs, ppo_config
    from tau2train.launch.trainer import PPOTrainer, host_python

    overrides = [*slurm_overrides(tmp_path), USER_SIM, f"slurm.container_type={container}",
                 "slurm.container_mounts=/data:/data", "slurm.placement=per_role_jobs"]
    exp = compose(overrides).config
    config = host_python(ppo_config(exp))
    specs = [*config.actor.scheduling_spec, *config.rollout.scheduling_spec]
    python = sys.executable if container == "none" else "python3"
    assert [s.cmd for s in specs] == [f"{python} -m areal.infra.rpc.rpc_server"] * len(specs)

    make_storage_dirs(exp)
    trainer = PPOTrainer.__new__(PPOTrainer)  # its scheduler alone, no workers
    trainer.config = config
    scheduler = trainer._init_scheduler()
    assert type(scheduler).__name__ == "SlurmScheduler"
    assert (scheduler.container_type, scheduler.container_mounts) == (container, "/data:/data")


def test_a_user_simulator_down_past_the_limit_stops_training_with_its_url(tmp_path):
    """The trainer at work (the stand-in holding, as a long training does) while its user
    simulator never answers: once econfig.user_llm_outage_s has passed, the command stops the
    training (unwinding through the trainer's exit, as Ctrl-C does) and exits 1 naming the URL,
    its last word. A process of its own: a stopped run's process ends (what its unwinding
    would print at exit is silenced, tau2train.launch.process_state.quiet_until_exit)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1/"
    result = run_cli(
        *STAND_IN, f"econfig.user_llm_base_url={dead}", f"cluster.fileroot={tmp_path}/exp",
        "econfig.user_llm_outage_s=2", cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS), "HOLD_FIRST_TRAINING": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
             "WANDB_MODE": "offline"},
    )
    # stopped by the watch: the stand-in's hold, left alone, ends in exit 0 after 300 s
    # (run_cli's bound), and says nothing of a user simulator
    assert result.returncode == 1, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert result.stderr.rstrip().splitlines()[-1] == line, result.stderr[-3000:]
    assert f"error: the user simulator at {dead} (econfig.user_llm_base_url) has not answered for" in line
    # the run's own account: down the whole limit before it stopped
    assert int(re.search(r"has not answered for (\d+) s", line).group(1)) >= 2, line
    assert "econfig.user_llm_outage_s=2: training stopped" in line and "resumes from the last checkpoint" in line
    run_dir = tmp_path / "exp" / "tau2-qwen3-1.7b-airline" / "trial0"
    assert json.loads((run_dir / RECORD_NAME).read_text())["calls"] == 1  # training had started
