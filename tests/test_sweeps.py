"""`-m` sweeps over reward settings: each point gets its own trial (and run directory)."""

from __future__ import annotations

import pytest
import yaml
from helpers.cli import USER_SIM

from tau2train.launch.sweeps import sweep_points, with_trial_names


def test_trial_names_come_from_what_the_sweep_varies():
    points = with_trial_names(sweep_points(
        ["econfig.turn_discount=0.9,1.0", "econfig.invalid_format_penalty=-0.1,0.1", "model=qwen3_8b"]
    ))
    names = [p[-1] for p in points]
    assert sorted(names) == [
        "trial_name=invalid_format_penalty0.1_turn_discount0.9",
        "trial_name=invalid_format_penalty0.1_turn_discount1.0",
        "trial_name=invalid_format_penaltym0.1_turn_discount0.9",
        "trial_name=invalid_format_penaltym0.1_turn_discount1.0",
    ]
    assert not any(c in n.split("=", 1)[1] for n in names for c in "-/")  # AReaL's rule


def test_model_and_domain_sweeps_keep_the_default_trial_and_explicit_names_win():
    by_group = with_trial_names(sweep_points(["model=qwen3_1_7b,qwen3_8b", "domain=airline,retail"]))
    assert all(not any(o.startswith("trial_name=") for o in p) for p in by_group)
    explicit = with_trial_names(sweep_points(["econfig.turn_discount=0.9,1.0", "trial_name=a,b"]))
    assert [o for p in explicit for o in p if o.startswith("trial_name=")] == ["trial_name=a", "trial_name=b"] * 2


@pytest.mark.slow
def test_a_reward_sweep_plans_one_run_directory_per_point(cli, tmp_path):
    result = cli("-m", "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp",
                     "econfig.turn_discount=0.9,1.0", "econfig.invalid_format_penalty=0.0,0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    experiment = tmp_path / "exp" / "tau2-qwen3-1.7b-airline"
    written = {p.parent.name: yaml.safe_load(p.read_text()) for p in experiment.glob("*/areal_config.yaml")}
    assert sorted(written) == [
        "invalid_format_penalty0.0_turn_discount0.9", "invalid_format_penalty0.0_turn_discount1.0",
        "invalid_format_penalty0.1_turn_discount0.9", "invalid_format_penalty0.1_turn_discount1.0",
    ]
    for trial, config in written.items():
        assert config["trial_name"] == trial
        assert config["experiment_name"] == "tau2-qwen3-1.7b-airline"
        assert f"turn_discount{config['rollout']['agent']['turn_discount']}" in trial
        assert f"invalid_format_penalty{config['econfig']['invalid_format_penalty']}" in trial
