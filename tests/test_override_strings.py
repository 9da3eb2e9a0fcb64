"""records.overrides.split_override, the one reading of an override string without Hydra,
agrees with Hydra's own parser on the key and the value as typed."""

from __future__ import annotations

import pytest

from tau2train.config.overrides import parse_overrides
from tau2train.records.overrides import override_key, split_override

CASES = {
    "econfig.max_steps=30": ("econfig.max_steps", "30"),
    "+econfig.reward_basis_by_domain.banking=[DB]": ("econfig.reward_basis_by_domain.banking", "[DB]"),
    "++data.weights.telecom=2": ("data.weights.telecom", "2"),
    "~tracking.group": ("tracking.group", None),
    "model=qwen3_8b": ("model", "qwen3_8b"),
    "hydra/sweeper=optuna": ("hydra/sweeper", "optuna"),
    "econfig.turn_discount=0.9,1.0": ("econfig.turn_discount", "0.9,1.0"),
    "tracking.group=${experiment_name}-sweep-1": ("tracking.group", "${experiment_name}-sweep-1"),
    "eval.gen_args={temperature:0.0}": ("eval.gen_args", "{temperature:0.0}"),
    "actor.optimizer.lr=1e-5": ("actor.optimizer.lr", "1e-5"),
}


@pytest.mark.parametrize("override", CASES)
def test_an_override_splits_into_its_key_and_its_value_as_typed(override):
    assert split_override(override) == CASES[override]
    assert override_key(override) == CASES[override][0]
    hydras = parse_overrides([override])[0]
    assert hydras.key_or_group == CASES[override][0]
    if CASES[override][1] is not None:
        assert hydras.input_line.partition("=")[2] == CASES[override][1]


def test_a_flag_has_no_value():
    assert split_override("-m") == ("-m", None) and split_override("--cfg") == ("--cfg", None)


def test_the_normalised_command_line_prefixes_only_plain_map_overrides():
    from tau2train.config.overrides import normalised

    assert normalised(["data.weights.a=1", "+econfig.reward_basis_by_domain.banking=[DB]", "++data.weights.b=2",
                       "~data.weights", "+experiment=cpu_miniature", "model=qwen3_8b", "-m"]) == [
        "++data.weights.a=1", "+econfig.reward_basis_by_domain.banking=[DB]", "++data.weights.b=2",
        "~data.weights", "experiment=cpu_miniature", "model=qwen3_8b", "-m"]
