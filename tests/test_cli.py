"""`python -m tau2train.run` as a user runs it: dry runs, bad input, Hydra's verbs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from areal.api.cli_args import load_expr_config
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.records.layout import AREAL_CONFIG_NAME
from tau2train.schemas import PPOConfig

# the markers `make test PYTEST_ARGS="-m 'not slurm and not slow'"` leaves out
pytestmark = [pytest.mark.slow]

SECRET = "wandb-secret-0123456789"
REPO = Path(__file__).resolve().parents[1]


def test_dry_run_writes_an_areal_config_and_prints_the_plan(cli, tmp_path):
    overrides = ["dry_run=true", "model=qwen3_30b_a3b", "domain=retail", USER_SIM,
                 *slurm_overrides(tmp_path), "slurm.partition=gpu", "slurm.account=rl"]
    result = cli(*overrides, cwd=tmp_path, env={"WANDB_API_KEY": SECRET})
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    for expected in (
        "dry run: nothing was started or submitted",
        "Qwen/Qwen3-30B-A3B (48 layers, 32 heads / 4 KV heads, MoE with 128 experts)",
        "tau2 'retail', train split 'train', valid split 'test'",
        "8 node(s) x 8 GPUs",
        "allocation=n8_sglang_d8t4_megatron_d4p4t2_d2p4e4",
        "16 x 8 = 128",
        "Slurm submission (would be made through hydra-submitit-launcher; not submitted)",
        "partition        gpu",
        "account          rl",
        "placement: per_role_jobs (slurm.placement=auto): a controller job without GPUs",
        "submits one job per role on whole nodes of 8 GPUs (8 nodes in all)",
    ):
        assert expected in plan, f"{expected!r} missing from plan:\n{plan}"
    # GPU table: role, backend, GPUs, dp, tp, pp, cp, ep
    rows = {line.split()[0]: line.split()[1:] for line in plan.splitlines() if line.strip().startswith(("rollout ", "trainer "))}
    assert rows["rollout"][:7] == ["sglang", "32", "8", "4", "1", "1", "1"]
    assert rows["trainer"][:7] == ["megatron", "32", "4", "2", "4", "1", "4"]

    run_dir = tmp_path / "experiments" / "tau2-qwen3-30b-a3b-retail" / "trial0"
    config_file = run_dir / AREAL_CONFIG_NAME
    assert str(config_file) in plan
    written = config_file.read_text()
    assert SECRET not in written and SECRET not in plan and SECRET not in result.stderr
    assert not (tmp_path / "experiments" / ".submitit").exists()

    # AReaL's own loader takes the file unchanged
    loaded, _ = load_expr_config(["--config", str(config_file)], PPOConfig)
    assert isinstance(loaded, PPOConfig)
    assert asdict(loaded) == asdict(OmegaConfRoundTrip.load(written))
    assert loaded.actor.backend == "megatron:(attn:d4p4t2|ffn:d2p4e4)"
    assert loaded.econfig.domain == "retail"
    # what the plan above promised, in the file AReaL reads: 8 nodes x 8 GPUs through Slurm's
    # per-role jobs, rollout sglang d8t4, groups of 8 (16 x 8 = 128 episodes in flight)
    on_disk = yaml.safe_load(written)
    assert (on_disk["experiment_name"], on_disk["trial_name"]) == ("tau2-qwen3-30b-a3b-retail", "trial0")
    assert (on_disk["cluster"]["n_nodes"], on_disk["cluster"]["n_gpus_per_node"]) == (8, 8)
    assert on_disk["cluster"]["fileroot"] == f"{tmp_path}/experiments" and on_disk["scheduler"]["type"] == "slurm"
    assert (on_disk["rollout"]["backend"], on_disk["rollout"]["max_concurrent_rollouts"]) == ("sglang:d8t4", 128)
    assert on_disk["gconfig"]["n_samples"] == 8 and on_disk["tokenizer_path"] == "Qwen/Qwen3-30B-A3B"
    assert (on_disk["actor"]["reward_scaling"], on_disk["actor"]["reward_bias"]) == (10.0, -0.5)


class OmegaConfRoundTrip:
    @staticmethod
    def load(text: str) -> PPOConfig:
        from omegaconf import OmegaConf

        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PPOConfig), OmegaConf.create(text)))


def test_bad_input_exits_2_with_one_message_and_leaves_nothing(cli, tmp_path):
    result = cli("dry_run=true", "model=qwen3_8b", USER_SIM, "cluster=slurm",
                     cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: cluster.fileroot='/path/to/shared/experiments': cluster=slurm needs a shared directory "
        "every node can see; this is a placeholder, not a real directory",
        "  valid: an absolute path on shared storage (NFS, Lustre, GPFS, ...)",
        "  fix:   add cluster.fileroot=/your/shared/storage/...",
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_is_checked_point_by_point_before_anything_is_written(cli, tmp_path):
    # one bad point (tp=3 does not fit Qwen3-1.7B's 16 heads) stops the whole sweep
    result = cli("-m", "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp",
                     "allocation.rollout=sglang:d6,sglang:d2t3", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: allocation.rollout='sglang:d2t3'" in result.stderr
    assert not (tmp_path / "exp").exists()


def test_every_model_and_domain_plans_through_a_glob_sweep(cli, tmp_path):
    """`-m model=glob(*) domain=glob(*)`: every choice, never a hand-picked few."""
    result = cli("-m", "dry_run=true", "model=glob(*)", "domain=glob(*)", USER_SIM,
                     *slurm_overrides(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("tau2train plan (dry run") == 1  # the first point's; the table lists all 20
    # one array per Slurm request: the one-node model's jobs hold a node's GPUs, the
    # multi-node models' controllers none, the CPU model's (trainer.cpu_only) no GPU either
    assert result.stdout.count("\nsbatch script of ") == 3
    assert result.stdout.count("sbatch script of 4 job(s)") == 2 and "sbatch script of 12 job(s)" in result.stdout
    table = [line.split() for line in result.stdout.rstrip().splitlines()[-20:]]
    assert [row[:2] for row in table[::4]] == [["1", "qwen3_1_7b"], ["5", "qwen3_235b_a22b"], ["9", "qwen3_30b_a3b"],
                                               ["13", "qwen3_8b"], ["17", "tiny_qwen3"]]
    assert [row[4:] for row in table[::4]] == [["1_0", "1", "x", "8"], ["2_0", "10", "x", "8"], ["2_4", "8", "x", "8"],
                                               ["2_8", "3", "x", "8"], ["3_0", "none", "(trainer.cpu_only)"]]
    written = sorted(p.relative_to(tmp_path / "experiments").parts[0]
                     for p in (tmp_path / "experiments").glob(f"*/trial0/{AREAL_CONFIG_NAME}"))
    assert len(written) == 20
    assert "tau2-qwen3-235b-a22b-telecom" in written and "tau2-tiny-qwen3-retail" in written and "tau2-qwen3-1.7b-mock" in written


def test_hydra_verbs_keep_working(cli, tmp_path):
    help_ = cli("--help", cwd=tmp_path)
    assert help_.returncode == 0
    assert "== Config groups (group=choice) ==" in help_.stdout
    assert "tau2train-config-reference" in help_.stdout  # where every key is documented
    assert "model: qwen3_1_7b, qwen3_235b_a22b, qwen3_30b_a3b, qwen3_8b, tiny_qwen3" in help_.stdout
    assert "domain: airline, mock, retail, telecom" in help_.stdout
    assert "cluster: local, ray, slurm" in help_.stdout

    info = cli("--info", "defaults", "model=qwen3_8b", cwd=tmp_path)
    assert info.returncode == 0
    assert "allocation/n3_sglang_d16_archon_d8" in info.stdout + info.stderr

    cfg = cli("--cfg", "job", "--resolve", "model=qwen3_8b", "reward.turn_discount=0.9", cwd=tmp_path)
    assert cfg.returncode == 0, cfg.stderr
    job = yaml.safe_load(cfg.stdout)
    assert job["actor"]["path"] == "Qwen/Qwen3-8B"
    assert job["rollout"]["agent"]["turn_discount"] == 0.9
    assert list(tmp_path.iterdir()) == []


def test_help_with_hydras_own_help_overrides_is_hydras_help(cli, tmp_path):
    """`--help hydra.help.header=HELLO` customises Hydra's help page: Hydra prints it, with
    that header, rather than tau2train's own help (tau2train.config.early.hydras_own)."""
    own = cli("--help", cwd=tmp_path)
    assert own.returncode == 0
    assert own.stdout.startswith("tau2train: train τ²-bench customer-service agents")
    hydras = cli("--help", "hydra.help.header=HELLO", cwd=tmp_path)
    assert hydras.returncode == 0, hydras.stderr
    assert hydras.stdout.splitlines()[0] == "HELLO"
    assert "tau2train: train τ²-bench" not in hydras.stdout
    assert "== Config groups (group=choice) ==" in hydras.stdout  # Hydra's page, its header changed
    assert list(tmp_path.iterdir()) == []


def test_conf_works_from_a_regular_install_run_elsewhere(tmp_path):
    """`pip install .` (not editable), then run from another directory."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    assert (target / "tau2train" / "conf" / "model" / "qwen3_8b.yaml").is_file()
    # every package of the source tree is installed (pyproject.toml lists them by hand)
    packages = {p.parent.relative_to(REPO) for p in (REPO / "tau2train").rglob("__init__.py")}
    assert {p for p in packages if not (target / p / "__init__.py").is_file()} == set()
    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import tau2train; print(tau2train.__file__)"],
        cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )
    assert where.stdout.startswith(str(target))
    # through the `tau2train` console script ([project.scripts]): this is its real-process test
    script = Path(sys.executable).parent / "tau2train"
    assert script.exists(), f"{script} missing: reinstall with `make install`"
    result = subprocess.run([str(script), "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp"],
                            cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "allocation=n1_sglang_d6_archon_d2" in result.stdout
    assert str(tmp_path / "exp") in result.stdout  # the plan names where the run would go
