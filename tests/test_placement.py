"""Every shipped experiment's Slurm request is the real one: every model x mode (train, sft, eval
of a served checkpoint) under `cluster=slurm`, as dry runs a user types, each plan's job and
placement set against what submitit writes in its sbatch script (the dry run's preview is
submitit's own), and, for a multi-node layout, each role's job against what AReaL's Slurm
scheduler writes (its own `_generate_sbatch_script`, whose whole-node check used to fail inside
the job). A multi-node layout whose roles do not fill whole nodes is refused before anything is
written, as AReaL would refuse it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from areal.api.alloc_mode import ModelAllocation
from areal.api.cli_args import NameResolveConfig, SchedulingSpec
from areal.infra.scheduler.slurm import SlurmScheduler
from helpers.areal_tau2 import write_dataset
from helpers.checkpoints import save_checkpoints
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.config.overrides import group_options

# the GPU models (tiny_qwen3 is a CPU run: trainer.cpu_only asks Slurm for no GPU, as test_areal_slurm checks)
MODELS = [m for m in group_options("model") if m != "tiny_qwen3"]
SBATCH = re.compile(r"^#SBATCH --([a-z-]+)(?:=(\S+))?$", re.M)


def sbatch_options(text: str) -> dict[str, str]:
    """An sbatch script's #SBATCH options (the first script in `text`)."""
    return {name: value for name, value in SBATCH.findall(text[text.index("#!/bin/bash"):])}


def planned_job(out: str) -> dict[str, str]:
    """The plan's "the job:" rows."""
    section = out[out.index("  the job:"):].splitlines()[1:]
    rows = {}
    for line in section:
        if not line.startswith("    "):
            break
        key, value = line.split(None, 1)
        rows[key] = value.strip()
    return rows


def areals_role_job(exp: dict, role: str, fileroot: Path) -> dict[str, str]:
    """The sbatch options AReaL's Slurm scheduler writes for a role of this AReaL config
    (replicas and GPUs per worker as its controllers ask: the rollout one worker per data-parallel
    instance, the trainer one per GPU), by its own code; nothing is submitted."""
    allocation = ModelAllocation.from_str(exp[role]["backend"], name=role)
    parallel = allocation.parallel
    spec = SchedulingSpec(**{**exp["actor"]["scheduling_spec"][0], "env_vars": {}})
    if role == "rollout":  # areal/infra/controller/rollout_controller.py:171-185
        instance = parallel.tp_size * parallel.pp_size
        replicas, spec.gpu, spec.cpu, spec.mem = parallel.dp_size, instance, spec.cpu * instance, spec.mem * instance
    else:
        replicas = parallel.world_size
    per_node = exp["cluster"]["n_gpus_per_node"]
    scheduler = SlurmScheduler.__new__(SlurmScheduler)  # its __init__ clears name-resolve state
    scheduler._n_gpus_per_node = per_node
    scheduler.experiment_name, scheduler.trial_name = exp["experiment_name"], exp["trial_name"]
    scheduler.fileroot = str(fileroot)
    scheduler.name_resolve_config = NameResolveConfig(type="nfs", nfs_record_root=str(fileroot / "nr"))
    scheduler.container_type, scheduler.container_mounts, scheduler.srun_additional_args = "none", None, ""
    total = spec.gpu * replicas
    nodes = max(1, -(-total // per_node))  # as create_workers
    script = scheduler._generate_sbatch_script(
        role=role, replicas=replicas, nodes=nodes, total_gpus=total, cpus_per_task=spec.cpu,
        mem_per_task=spec.mem * 1024, schedulings=[spec], nodelist=None, exclude=None,
    )
    return sbatch_options(script)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("AReaL-tau2-data"))


@pytest.mark.parametrize("model", MODELS)
def test_each_models_slurm_request_is_what_submitit_and_areal_ask_for(cli, model, released, tmp_path):
    common = ["dry_run=true", f"model={model}", USER_SIM, *slurm_overrides(tmp_path), "tracking=none"]
    train = cli(*common, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    [config_file] = (tmp_path / "experiments").glob("*/*/areal_config.yaml")
    exp = yaml.safe_load(config_file.read_text())
    cluster = exp["cluster"]
    one_node = cluster["n_nodes"] == 1
    worker = exp["actor"]["scheduling_spec"][0]

    for name, result, roles in [
        ("train", train, ("rollout", "actor")),
        ("sft", cli(*common, "mode=sft", "data=areal_tau2", f"data.path={released}", "sft.batch_size=4",
                    cwd=tmp_path), ("actor",)),
    ]:
        assert result.returncode == 0, (name, result.stderr)
        out = result.stdout
        job, planned = sbatch_options(out), planned_job(out)
        # the plan's job is the sbatch script's, submitit's own
        assert (job["nodes"], job["cpus-per-task"], job["mem"]) == (
            planned["nodes"], planned["cpus_per_task"], planned["mem_gb"] + "GB"), (name, out)
        assert job.get("gpus-per-node") == planned.get("gpus_per_node"), (name, out)
        assert job["nodes"] == "1"
        if one_node:
            # one job holding the node: its GPUs, the controller's CPUs and memory plus each GPU worker's
            assert "placement: single_job (slurm.placement=auto)" in out, out
            assert job["gpus-per-node"] == str(cluster["n_gpus_per_node"])
            assert job["cpus-per-task"] == str(8 + worker["cpu"] * cluster["n_gpus_per_node"])
            assert job["mem"] == f"{64 + worker['mem'] * cluster['n_gpus_per_node']}GB"
            assert exp["scheduler"]["type"] == "local"
            continue
        # the controller without GPUs, and one job per role on whole nodes, as AReaL writes them
        assert "placement: per_role_jobs (slurm.placement=auto)" in out, out
        assert "gpus-per-node" not in job and exp["scheduler"]["type"] == "slurm"
        role_nodes = []
        for role in roles:
            areal_job = areals_role_job(exp, role, tmp_path / "areal")
            assert areal_job["gres"] == f"gpu:{cluster['n_gpus_per_node']}", (role, areal_job)
            role_nodes.append(int(areal_job["nodes"]))
        if name == "train":
            assert sum(role_nodes) == cluster["n_nodes"], role_nodes

    # the evaluation of a served checkpoint of this run: its server's GPUs in the one job
    run_dir = config_file.parent
    save_checkpoints(tmp_path / "experiments", exp["experiment_name"], exp["trial_name"], [1])
    evaluation = cli(*common, "mode=eval", f"eval.checkpoint={run_dir}", cwd=tmp_path)
    assert evaluation.returncode == 0, evaluation.stderr
    job, planned = sbatch_options(evaluation.stdout), planned_job(evaluation.stdout)
    assert "placement: one job: the evaluation" in evaluation.stdout
    assert job["gpus-per-node"] == planned["gpus_per_node"] and int(job["gpus-per-node"]) >= 1
    assert (job["nodes"], job["cpus-per-task"], job["mem"]) == ("1", "8", "64GB")


def test_a_multi_node_layout_whose_roles_split_a_node_is_refused_as_areal_would(cli, tmp_path):
    """12 + 12 GPUs on three 8-GPU nodes: AReaL's Slurm scheduler raises for the 12-GPU role once
    the job runs; tau2train refuses it before anything is written."""
    args = ["dry_run=true", "model=qwen3_8b", "allocation.rollout=sglang:d12", "allocation.actor=archon:d12",
            USER_SIM, *slurm_overrides(tmp_path)]
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: allocation.rollout='sglang:d12': uses 12 GPUs, and AReaL's Slurm "
                                    "scheduler gives each role whole nodes"), result.stderr
    assert "valid: a multiple of 8 GPUs per role: 8, 16, 24, ..." in result.stderr
    assert "fix:" in result.stderr and result.stdout == ""
    assert not (tmp_path / "experiments").exists()
    exp = {"rollout": {"backend": "sglang:d12"}, "actor": {"backend": "archon:d12", "scheduling_spec": [
        {"cpu": 4, "gpu": 1, "mem": 32}]}, "cluster": {"n_gpus_per_node": 8}, "experiment_name": "e",
           "trial_name": "t"}
    with pytest.raises(ValueError, match="Slurm only supports allocating entire nodes"):
        areals_role_job(exp, "rollout", tmp_path / "areal")


def test_a_single_job_cannot_hold_a_multi_node_layout(cli, tmp_path):
    result = cli("dry_run=true", "model=qwen3_8b", "slurm.placement=single_job", USER_SIM,
                 *slurm_overrides(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: slurm.placement='single_job': a single job holds one node, "
                                    "and the layout needs cluster.n_nodes=3"), result.stderr
    assert not (tmp_path / "experiments").exists()


def test_the_role_jobs_areal_submits_get_the_runs_partition_account_and_limits(tmp_path):
    """AReaL's Slurm scheduler writes the role jobs' sbatch scripts itself, without partition,
    account, QOS or time limit; the controller's sbatch calls carry them as sbatch's own input
    environment (test_areal_multihost checks the role jobs land in the partition)."""
    from tau2train.config.compose import compose
    from tau2train.config.placement import worker_sbatch_env

    base = ["model=qwen3_8b", USER_SIM, *slurm_overrides(tmp_path)]
    asked = compose([*base, "slurm.partition=gpu", "slurm.account=lab-7", "slurm.qos=high",
                     "slurm.constraint='h100|a100'", "slurm.reservation=tau2", "slurm.time_minutes=90",
                     "slurm.exclusive=true"]).config
    assert worker_sbatch_env(asked.slurm) == {
        "SBATCH_PARTITION": "gpu", "SBATCH_ACCOUNT": "lab-7", "SBATCH_QOS": "high",
        "SBATCH_CONSTRAINT": "h100|a100", "SBATCH_RESERVATION": "tau2", "SBATCH_TIMELIMIT": "90",
        "SBATCH_EXCLUSIVE": "exclusive"}
    # keys left to the cluster set nothing (the default time limit, 3 days, is the controller's)
    assert worker_sbatch_env(compose(base).config.slurm) == {"SBATCH_TIMELIMIT": "4320"}
