"""`-m` sweeps over reward settings: each point gets its own trial (and run directory)."""

from __future__ import annotations

import pytest
import yaml
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.launch.sweeps import sweep_points, with_trial_names


def test_trial_names_come_from_what_the_sweep_varies():
    points = with_trial_names(sweep_points(
        ["reward.turn_discount=0.9,1.0", "reward.format_penalty=-0.1,0.1", "model=qwen3_8b"]
    ))
    names = [p[-1] for p in points]
    assert sorted(names) == [
        "trial_name=format_penalty0.1_turn_discount0.9",
        "trial_name=format_penalty0.1_turn_discount1.0",
        "trial_name=format_penaltym0.1_turn_discount0.9",
        "trial_name=format_penaltym0.1_turn_discount1.0",
    ]
    assert not any(c in n.split("=", 1)[1] for n in names for c in "-/")  # AReaL's rule


def test_model_and_domain_sweeps_keep_the_default_trial_and_explicit_names_win():
    by_group = with_trial_names(sweep_points(["model=qwen3_1_7b,qwen3_8b", "domain=airline,retail"]))
    assert all(not any(o.startswith("trial_name=") for o in p) for p in by_group)
    explicit = with_trial_names(sweep_points(["reward.turn_discount=0.9,1.0", "trial_name=a,b"]))
    assert [o for p in explicit for o in p if o.startswith("trial_name=")] == ["trial_name=a", "trial_name=b"] * 2


@pytest.mark.slow
def test_a_reward_sweep_plans_one_run_directory_per_point(cli, tmp_path):
    result = cli("-m", "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp",
                     "reward.turn_discount=0.9,1.0", "reward.scaling=5,10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    experiment = tmp_path / "exp" / "tau2-qwen3-1.7b-airline"
    written = {p.parent.name: yaml.safe_load(p.read_text()) for p in experiment.glob("*/areal_config.yaml")}
    assert sorted(written) == [
        "scaling10_turn_discount0.9", "scaling10_turn_discount1.0", "scaling5_turn_discount0.9", "scaling5_turn_discount1.0",
    ]
    for trial, config in written.items():
        assert config["trial_name"] == trial
        assert config["experiment_name"] == "tau2-qwen3-1.7b-airline"
        # AReaL's own keys follow the reward group's
        assert f"turn_discount{config['rollout']['agent']['turn_discount']}" in trial
        assert f"scaling{config['actor']['reward_scaling']:g}" in trial


def table_rows(out: str, points: int) -> list[list[str]]:
    """The cells of the sweep table that ends a `-m` dry run (its last `points` lines)."""
    return [line.split() for line in out.rstrip().splitlines()[-points:]]


def test_a_slurm_sweep_dry_run_plans_its_first_point_and_ends_with_a_table_of_its_points(cli, tmp_path):
    result = cli("-m", "dry_run=true", "model=qwen3_1_7b,qwen3_8b", "domain=airline,retail", USER_SIM,
                 *slurm_overrides(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("tau2train plan (dry run") == 1 and out.count("Slurm submission (would be made") == 1
    assert "(the plan of point 1; 3 more point(s) in the table below, each planned alone by" in out
    # one sbatch script per distinct Slurm request: the one-node model's jobs, the 3-node one's controllers
    assert out.count("\nsbatch script of 2 job(s): array ") == 2
    lines = out.rstrip().splitlines()
    assert lines[-6] == ("Sweep of 4 points (dry run: nothing was started or submitted): 2 job arrays, one per "
                         "distinct Slurm request (sbatch scripts above; Slurm job: <array>_<index>)")
    assert lines[-5].split() == ["#", "model", "domain", "run", "directory", "(under",
                                 f"{tmp_path}/experiments)", "Slurm", "job", "GPUs", "(nodes", "x", "per", "node)"]
    assert table_rows(out, 4) == [
        ["1", "qwen3_1_7b", "airline", "tau2-qwen3-1.7b-airline/trial0", "1_0", "1", "x", "8"],
        ["2", "qwen3_1_7b", "retail", "tau2-qwen3-1.7b-retail/trial0", "1_1", "1", "x", "8"],
        ["3", "qwen3_8b", "airline", "tau2-qwen3-8b-airline/trial0", "2_0", "3", "x", "8"],
        ["4", "qwen3_8b", "retail", "tau2-qwen3-8b-retail/trial0", "2_1", "3", "x", "8"],
    ]
    # every point's AReaL config is written, its plan printed or not
    assert len(list((tmp_path / "experiments").glob("*/trial0/areal_config.yaml"))) == 4


def test_a_local_sweep_dry_run_ends_with_a_table_of_its_points(cli, tmp_path):
    result = cli("-m", "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp", "mode=eval",
                 "eval.agent_base_url=http://127.0.0.1:30000/v1", "eval.agent_model=a,b",
                 "experiment_name=tau2-agents-airline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("τ² evaluation plan") == 1 and "sbatch" not in out
    assert out.rstrip().splitlines()[-4] == ("Sweep of 2 points (dry run: nothing was started or submitted): "
                                             "run one after another on this machine")
    assert table_rows(out, 2) == [
        ["1", "a", "tau2-agents-airline/agent_modela", "none", "(an", "endpoint's", "evaluation)"],
        ["2", "b", "tau2-agents-airline/agent_modelb", "none", "(an", "endpoint's", "evaluation)"],
    ]
