"""The one JSONL reader of the released AReaL-tau2-data files (config.areal_tau2.read_lines)
and the one reading of a line's domain (records.areal_tau2.row_domain), which the RL file and
the SFT file share."""

from __future__ import annotations

import pytest

from tau2train.config.areal_tau2 import FIX_ROW, KEY, BadLine, read_lines, tau2_domain
from tau2train.config.errors import ConfigError
from tau2train.records.areal_sft import SFT_DOMAIN, SFT_DOMAIN_IDS
from tau2train.records.areal_tau2 import row_domain


def test_a_lines_domain_is_the_one_it_states_else_its_ids_prefix():
    assert row_domain({"user_scenario": {"instructions": {"domain": "retail"}}, "id": "airline_1"}) == "retail"
    assert row_domain({"user_scenario": {"instructions": None}, "id": "telecom_7"}) == "telecom"
    sft = {"metadata": {"scenario_id": "retail_3", "source_dialog_id": "airline_dialog_42"}}
    assert row_domain(sft, SFT_DOMAIN, SFT_DOMAIN_IDS) == "airline"
    assert row_domain({"metadata": {"domain": "telecom"}}, SFT_DOMAIN, SFT_DOMAIN_IDS) == "telecom"
    with pytest.raises(ValueError, match="^no domain: metadata.domain is missing"):
        row_domain({"metadata": {"correct": 1}}, SFT_DOMAIN, SFT_DOMAIN_IDS)
    with pytest.raises(ValueError, match="^no domain: user_scenario.instructions.domain is missing"):
        row_domain({"id": 7})


def parse(number: int, text: str, known: set[str]) -> str:
    if text.startswith("bad"):
        raise ValueError("not a row")
    return tau2_domain(text.strip(), known)


def test_every_line_is_parsed_and_the_first_bad_one_is_named(tmp_path):
    file = tmp_path / "rows.jsonl"
    file.write_text("airline\n\nretail\n")
    assert read_lines(str(file), parse, "rows") == ("airline", "retail")

    file.write_text("airline\nbad\n")
    with pytest.raises(ConfigError) as error:
        read_lines(str(file), parse, "rows")
    assert (error.value.key, error.value.problem, error.value.fix) == (KEY, f"{file}:2: not a row", FIX_ROW)

    file.write_text("airline\n\nbanking\n")
    with pytest.raises(ConfigError) as error:
        read_lines(str(file), parse, "rows")
    assert error.value.problem == f"{file}:3: domain 'banking' is not one of tau2's"
    assert "airline" in error.value.valid

    file.write_text("\n\n")
    with pytest.raises(ConfigError, match="has no rows"):
        read_lines(str(file), parse, "rows")


def test_a_bad_line_carries_its_own_fix():
    assert (BadLine("x").fix, BadLine("x", fix="y").fix, BadLine("x", valid="v").valid) == (FIX_ROW, "y", "v")
