"""AReaL's own PPOTrainer under `cluster=slurm`, on the local Slurm (tests/setup_slurm.sh),
both placements (tau2train/config/placement.py), each one GRPO step of the tiny Qwen3 on mock:
- the one-node layout as users get it (slurm.placement=auto): `python -m tau2train.run ...
  cluster=slurm` submits one job through hydra-submitit-launcher, and AReaL's local scheduler
  starts the workers (the FSDP actor and the rollout worker, which starts the CPU inference
  server) inside it;
- slurm.placement=per_role_jobs, as multi-node layouts run: the submitted job is AReaL's
  controller, whose Slurm scheduler submits the workers as Slurm jobs of their own on this node.

The same test doubles as tests/test_areal_training.py (helpers/areal_run.py). The workers are
declared GPU-less to Slurm (`actor.scheduling_spec.0.gpu=0`; AReaL otherwise asks for whole
GPU nodes) and run on the host, which AReaL's Slurm scheduler does only through tau2train's
trainer (tau2train/launch/trainer.py: without it every worker runs in `singularity exec`).
Nothing about tau2train or the τ² data is set by hand for the workers: the worker command is
the plain `python -m ...` a user writes. A worker job of the same trial left running by an
earlier controller (killed hard) is cancelled before the new workers start.
Runtime: ~7-10 min on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import areal_run
from helpers.areal_run import cpu_train_args, plain, run_env, step_stats
from helpers.cli import job_state, require_slurm, run_cli, wait_for
from helpers.plain_user import PlainUserLLM
from helpers.served import served
from tau2train.serving.tiny_qwen import tiny_qwen_dir

pytestmark = [pytest.mark.areal, pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1500)]

EXPERIMENT, TRIAL, SINGLE_TRIAL = "tau2-tiny-qwen3-mock-slurm", "slurm0", "single0"
WORKER_ROLES = ("actor", "rollout")
RUN_DEADLINE_S = 1200


def jobs_named(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True).stdout
    return out.split("\n") if out.strip() else []


def submit_and_wait(root: Path, user_sim: PlainUserLLM, trial: str, extra: list[str]):
    """One GRPO step of the tiny model on mock, submitted with `cluster=slurm` (what this 2-CPU
    node fits: each job takes one CPU), waited for until its job record says it ended."""
    env, filter_log = run_env(root, trial)
    args = [
        *cpu_train_args(root, tiny_qwen_dir(), user_sim.base_url + "/", EXPERIMENT, trial),
        "total_train_steps=1",
        "saver.freq_epochs=null",
        "saver.freq_steps=null",
        "recover.mode=disabled",
        "cluster=slurm",
        "slurm.cpus_per_task=1",
        "slurm.mem_gb=4",
        "slurm.time_minutes=60",
        "actor.scheduling_spec.0.mem=2",
        *extra,
    ]
    submitted = run_cli(*args, cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    run_dir = root / "experiments" / EXPERIMENT / trial
    wait_for(
        lambda: job_state(run_dir) in ("completed", "failed"),
        "the job to finish",
        RUN_DEADLINE_S,
        lambda: "; squeue:\n" + subprocess.run(["squeue"], capture_output=True, text=True).stdout,
    )
    return run_dir, filter_log


def job_log(run_dir: Path) -> tuple[dict, str]:
    """The run's job record and its Slurm job's log (stderr, then stdout)."""
    record = json.loads((run_dir / "job.json").read_text())
    return record, plain(Path(record["stderr"])) + plain(Path(record["stdout"]))


@pytest.fixture(scope="module")
def user_sim():
    require_slurm()
    yield from served(PlainUserLLM())


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, user_sim):
    """slurm.placement=per_role_jobs: AReaL's Slurm scheduler submits a job per worker role."""
    root = tmp_path_factory.mktemp("areal_slurm")
    names = [EXPERIMENT, *(f"{EXPERIMENT}_{TRIAL}:{role}" for role in WORKER_ROLES)]
    try:
        # a worker job an earlier controller of this trial left running (killed hard)
        leftover = subprocess.run(
            ["sbatch", "--parsable", "-J", f"{EXPERIMENT}_{TRIAL}:actor", "-c", "1", "--mem=100M",
             "-o", "/dev/null", "--wrap", "sleep 1200"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        run_dir, filter_log = submit_and_wait(root, user_sim, TRIAL, [
            "slurm.placement=per_role_jobs",
            "actor.scheduling_spec.0.cpu=1",
            # no GRES on this node: the workers ask Slurm for no GPU (AReaL then asks no whole node)
            "actor.scheduling_spec.0.gpu=0",
        ])
        yield root, run_dir, filter_log, leftover
    finally:
        for name in names:
            subprocess.run(["scancel", "-n", name], capture_output=True)


@pytest.fixture(scope="module")
def single_job_run(tmp_path_factory, user_sim):
    """The one-node layout with slurm.placement's default (auto): one Slurm job, AReaL's local
    scheduler inside it."""
    root = tmp_path_factory.mktemp("areal_slurm_single")
    try:
        run_dir, filter_log = submit_and_wait(root, user_sim, SINGLE_TRIAL, [
            # the job's CPUs: the controller's 1 + 0 per worker (this node has 2 CPUs); its
            # memory: 4 GB + 2 GB per worker; trainer.cpu_only (cpu_train_args): no GPU asked for
            "actor.scheduling_spec.0.cpu=0",
        ])
        yield root, run_dir, filter_log
    finally:
        subprocess.run(["scancel", "-n", EXPERIMENT], capture_output=True)


def test_a_one_node_layout_runs_a_grpo_step_as_one_slurm_job_with_areals_local_scheduler(single_job_run):
    root, run_dir, filter_log = single_job_run
    record, log = job_log(run_dir)
    assert record["state"] == "completed", log[-6000:]
    # the job asked for the controller's CPU and every worker's memory, and no GPU
    [script] = (root / "experiments" / EXPERIMENT / ".submitit").glob(f"{record['slurm_job_id']}/*_submission.sh")
    sbatch = script.read_text()
    for line in ("#SBATCH --nodes=1", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=8GB"):
        assert line in sbatch, sbatch
    assert "--gpus-per-node" not in sbatch
    # AReaL ran its local scheduler inside the job: no per-role job script, the workers' logs
    # under the job's own
    assert yaml.safe_load((run_dir / "areal_config.yaml").read_text())["scheduler"]["type"] == "local"
    logs = areal_run.areal_dir(root / "experiments", "logs", EXPERIMENT, SINGLE_TRIAL)
    assert not list(logs.glob("*.sh")), sorted(p.name for p in logs.iterdir())
    stats = step_stats(plain(logs / "main.log"))
    assert sorted(stats) == [1], log[-6000:]
    assert stats[1]["ppo_actor/update/update_successful"] == 1
    assert stats[1]["ppo_actor/n_seqs"] == 4
    episodes = areal_run.records(filter_log, "episode")
    assert len(episodes) >= 2 and all(e["tau2_task"] for e in episodes)
    assert list((run_dir / "generated").glob("*/*/*.json"))


def test_cluster_slurm_runs_a_grpo_step_with_areals_slurm_scheduler(slurm_run):
    root, run_dir, filter_log, leftover = slurm_run
    record, controller_log = job_log(run_dir)
    assert record["state"] == "completed", controller_log[-6000:]
    # the earlier controller's leftover worker job was cancelled before new workers started
    assert (
        f"cancelled 1 worker job(s) an earlier controller of {EXPERIMENT}/{TRIAL} left behind: "
        f"{leftover} ({EXPERIMENT}_{TRIAL}:actor)"
    ) in controller_log, controller_log[-6000:]
    assert leftover not in subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    logs = areal_run.areal_dir(root / "experiments", "logs", EXPERIMENT, TRIAL)
    # AReaL's Slurm scheduler submitted one job per worker role, run on the host with the
    # controller's interpreter (the `python` of the command line replaced), no GPUs asked for
    for role in WORKER_ROLES:
        script = (logs / f"{role}.sh").read_text()
        assert f"#SBATCH --job-name={EXPERIMENT}_{TRIAL}:{role}" in script
        assert f"{sys.executable} -m helpers.cpu_rollout_worker" in script, script
        assert "singularity" not in script and "--gres" not in script, script
    # the step ran: AReaL's FSDP update of the group its rollout worker played against tau2
    stats = step_stats(plain(logs / "main.log"))
    assert sorted(stats) == [1], controller_log[-6000:]
    assert stats[1]["ppo_actor/update/update_successful"] == 1
    assert stats[1]["ppo_actor/n_seqs"] == 4
    episodes = areal_run.records(filter_log, "episode")
    assert len(episodes) >= 2 and all(e["tau2_task"] for e in episodes)
    assert list((run_dir / "generated").glob("*/*/*.json"))  # the workers wrote trajectories
    # and AReaL cancelled its worker jobs at the end
    for role in WORKER_ROLES:
        wait_for(lambda: not jobs_named(f"{EXPERIMENT}_{TRIAL}:{role}"), f"the {role} job to end", 60)
