"""The tracking group: AReaL's stats logger and eval reports go to one wandb run per job,
grouped by sweep; the API key only ever comes from the environment."""

from __future__ import annotations

import pytest
from helpers.cli import USER_SIM

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked
from tau2train.launch.sweeps import prepare


def test_wandb_tracking_wires_areal_stats_logger_to_the_run():
    exp = compose([USER_SIM, "tracking=wandb", "tracking.project=tau2-lab", "tracking.mode=offline",
                   "domain=retail", "trial_name=lr2"]).config
    wandb = exp.stats_logger.wandb
    assert (wandb.mode, wandb.project, wandb.name, wandb.group) == ("offline", "tau2-lab", "lr2", "tau2-qwen3-1.7b-retail")
    assert wandb.tags == ["model=qwen3-1.7b", "domain=retail", "cluster=local", "mode=train"]


def test_no_tracking_disables_wandb():
    exp = compose([USER_SIM, "tracking=none"]).config
    assert exp.stats_logger.wandb.mode == "disabled"
    assert exp.tracking.backend == "none"


def test_a_sweep_shares_one_group_and_each_point_keeps_its_name(tmp_path):
    jobs = prepare(["-m", "dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}", "reward.turn_discount=0.9,1.0"])
    groups = {c.config.stats_logger.wandb.group for c in jobs}
    names = [c.config.stats_logger.wandb.name for c in jobs]
    assert len(groups) == 1 and groups.pop().startswith("tau2-qwen3-1.7b-airline-sweep-")
    assert names == ["turn_discount0.9", "turn_discount1.0"]


def test_online_tracking_without_a_key_is_refused_before_launch(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(ConfigError) as caught:
        checked(compose([USER_SIM, "tracking.mode=online"]))
    assert caught.value.key == "tracking.mode"
    assert "export WANDB_API_KEY" in str(caught.value)
    checked(compose([USER_SIM, "tracking.mode=online", "dry_run=true"]))  # planning needs no key
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    checked(compose([USER_SIM, "tracking.mode=online"]))


def test_a_proxy_admin_key_in_the_config_is_refused():
    with pytest.raises(ConfigError) as caught:
        checked(compose([USER_SIM, "rollout.agent.admin_api_key=my-own-key-123"]))
    assert caught.value.key == "rollout.agent.admin_api_key"
    assert "fresh admin key" in str(caught.value)
    assert "my-own-key-123" not in str(caught.value)


def test_an_api_key_in_the_config_is_refused():
    with pytest.raises(ConfigError) as caught:
        checked(compose([USER_SIM, "stats_logger.wandb.wandb_api_key=abc123"]))
    assert caught.value.key == "stats_logger.wandb.wandb_api_key"
    assert "abc123" not in str(caught.value)
