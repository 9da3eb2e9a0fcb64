"""The lists tau2train derives from their one source instead of keeping by hand: each agrees
with what it is derived from."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources

from tau2train import schemas
from tau2train.config.overrides import CONFIG_MODULE, GROUPS
from tau2train.schemas import DOMAIN_MAPS, TAU2TRAIN_ONLY_KEYS, EnvConfig, ExperimentConfig, PPOConfig


def test_the_groups_are_the_conf_folders_the_defaults_list_picks_from():
    conf = importlib.resources.files(CONFIG_MODULE)
    folders = {p.name for p in conf.iterdir() if p.is_dir() and any(f.name.endswith(".yaml") for f in p.iterdir())}
    assert set(GROUPS) == folders and len(GROUPS) == len(folders)
    assert {"model", "domain", "data", "reward", "experiment"} <= set(GROUPS)


def test_the_keys_areal_never_sees_are_exactly_tau2trains_own():
    ours = {f.name for f in dataclasses.fields(ExperimentConfig)} - {f.name for f in dataclasses.fields(PPOConfig)}
    assert set(TAU2TRAIN_ONLY_KEYS) == ours and len(TAU2TRAIN_ONLY_KEYS) == len(ours)
    assert {"mode", "model", "domain", "eval", "reward"} <= ours and "econfig" not in ours


def test_the_domain_maps_are_econfigs_per_domain_settings():
    assert DOMAIN_MAPS == ("max_steps_by_domain", "reward_basis_by_domain", "user_llm_by_domain")
    assert all(isinstance(getattr(EnvConfig(), name), dict) for name in DOMAIN_MAPS)


def test_every_exported_schema_name_loads_from_its_module():
    assert {"ExperimentConfig", "RunInfo", "Range", "MODES", "RewardSpec", "DOMAIN_MAPS"} <= set(schemas.__all__)
    for name in schemas.__all__:
        value = getattr(schemas, name)
        home = schemas._HOME[name]
        assert getattr(importlib.import_module(f"tau2train.schemas.{home}"), name) is value
