"""`mode=sft`: AReaL's SFT trainer on the AReaL-tau2-data SFT file (a fixture in the released
format, tests/helpers/areal_tau2.py), loss on the answer turn only.

Examples are tokenised with Qwen3's real chat template (tests/helpers/qwen3_chat_template.jinja:
the `chat_template` of Qwen/Qwen3-8B's tokenizer_config.json on huggingface.co, the one every
Qwen3 dense model of April 2025 ships; stored as data) and Qwen's real tokenizer (the tiny
model's, tests/tau2train/serving/tiny_qwen.py): the masked tokens decode to exactly the answer turn.
The CLI test hands the rows to a recording stand-in of AReaL's SFTTrainer.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers.areal_tau2 import (
    AIRLINE_ARGS,
    AIRLINE_THINKING,
    SAME_CALL_LINES,
    SFT_LINES,
    write_sft,
)
from helpers.recording_trainer import SFT_RECORD_NAME
from tau2train.serving.tiny_qwen import tiny_qwen_dir

from tau2train.config import areal_sft
from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked
from tau2train.launch.sft import sft_config, tokenise
from tau2train.records import areal_sft as rows
from tau2train.rollout.players import agent_tool_schemas

TESTS = Path(__file__).resolve().parent
QWEN3_TEMPLATE = TESTS / "helpers" / "qwen3_chat_template.jinja"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("AReaL-tau2-data")
    write_sft(root)
    return root


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory) -> Path:
    """Qwen's tokenizer with Qwen3's real chat template, as a model folder's tokenizer files."""
    target = tmp_path_factory.mktemp("qwen3-tokenizer")
    for name in TOKENIZER_FILES:
        if (tiny_qwen_dir() / name).is_file():
            shutil.copy(tiny_qwen_dir() / name, target / name)
    (target / "chat_template.jinja").write_text(QWEN3_TEMPLATE.read_text())
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def tokenizer(qwen3):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen3)
    assert tok.chat_template == QWEN3_TEMPLATE.read_text()
    return tok


@pytest.fixture(scope="module")
def examples(folder) -> dict[int, rows.Example]:
    loaded = areal_sft.load(str(folder), None, correct_only=False)
    return {e.line: e for e in loaded.examples}


def tokenised(example, tokenizer):
    return tokenise(example, tokenizer, agent_tool_schemas(example.domain))


def split(row, tokenizer) -> tuple[str, str]:
    """(prompt text, answer text) of a tokenised row; the mask must be 0s then 1s."""
    mask = row["loss_mask"]
    first = mask.index(1)
    assert set(mask[:first]) == {0} and set(mask[first:]) == {1}, "the mask is not one answer span"
    ids = row["input_ids"]
    return tokenizer.decode(ids[:first]), tokenizer.decode(ids[first:])


CALL = '<tool_call>\n{"name": "get_user_details", "arguments": ' + json.dumps(AIRLINE_ARGS) + "}\n</tool_call>"
# line -> the answer turn exactly as Qwen3's template renders it, end-of-turn token included
EXPECTED_ANSWERS = {
    1: f"<think>\n{AIRLINE_THINKING}\n</think>\n\n{CALL}<|im_end|>",
    2: "<think>\n\n</think>\n\nSorry, I cannot help with that.<|im_end|>",
    4: "<think>\nFound the user.\n</think>\n\nThanks, I found your account. Which order is it?<|im_end|>",
    6: '<think>\nFind the customer by phone.\n</think>\n\nLet me look up your line.\n<tool_call>\n'
       '{"name": "get_customer_by_phone", "arguments": {"phone_number": "555-123-2002"}}\n</tool_call><|im_end|>',
    7: "<think>\n\n</think>\n\nCould you restart your phone first?<|im_end|>",
}


@pytest.mark.parametrize("line", sorted(EXPECTED_ANSWERS))
def test_the_loss_mask_covers_exactly_the_answer_turn(line, examples, tokenizer):
    row = tokenised(examples[line], tokenizer)
    prompt, answer = split(row, tokenizer)
    assert answer == EXPECTED_ANSWERS[line]
    assert prompt.endswith("<|im_start|>assistant\n")
    assert len(row["input_ids"]) == len(row["loss_mask"])
    # the answer's tokens are the ones the model generates after the prompt
    assert row["input_ids"] == tokenizer.encode(prompt + answer, add_special_tokens=False)


def test_both_tool_call_shapes_render_the_same_tokens(examples, tokenizer):
    first, second = (tokenised(examples[line], tokenizer) for line in SAME_CALL_LINES)
    assert first == second
    assert examples[SAME_CALL_LINES[0]].answer == examples[SAME_CALL_LINES[1]].answer


def test_tools_are_in_the_prompt_once(examples, tokenizer):
    # airline lists its tools in the system prompt (as released): the template adds none
    airline, _ = split(tokenised(examples[1], tokenizer), tokenizer)
    assert airline.count('"name": "get_user_details"') == 1
    assert "You may call one or more functions" not in airline
    # telecom's system prompt has none: tau2's telecom tools come through the template's tools=
    telecom, _ = split(tokenised(examples[6], tokenizer), tokenizer)
    assert "You may call one or more functions" in telecom
    for tool in agent_tool_schemas("telecom"):
        assert telecom.count(json.dumps(tool, ensure_ascii=False)) == 1
    assert telecom.startswith("<|im_start|>system\nYou are a customer service agent.\n<policy>")


def test_thinking_goes_where_the_template_puts_it(examples, tokenizer):
    prompt, answer = split(tokenised(examples[4], tokenizer), tokenizer)
    # the earlier turn of this tool round keeps its thinking (`reasoning` in the row): Qwen3
    # keeps it after the last user query and drops it before
    assert "<think>\nLook the user up by email.\n</think>\n\n<tool_call>" in prompt
    assert prompt.count("<think>") == 1
    assert answer.startswith("<think>\nFound the user.\n</think>")


def test_parsing_normalises_both_call_shapes():
    openai = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}}
    plain = {"name": "f", "arguments": {"a": [1, 2]}}
    assert rows.tool_call(openai, "x") == rows.tool_call(plain, "x") == {
        "type": "function", "function": {"name": "f", "arguments": {"a": [1, 2]}}}


def test_rows_kept_by_correct_filter_and_domains(folder):
    loaded = areal_sft.load(str(folder), None, correct_only=True)
    assert [e.line for e in loaded.examples] == [i for i, (_, c) in enumerate(SFT_LINES, 1) if c == 1]
    assert loaded.total == {"airline": 3, "retail": 2, "telecom": 3}
    assert loaded.kept == {"airline": 2, "retail": 1, "telecom": 2}
    some = areal_sft.load(str(folder), ["retail", "telecom"], correct_only=False)
    assert Counter(e.domain for e in some.examples) == {"retail": 2, "telecom": 3}
    assert areal_sft.summary(loaded) == (
        "5 SFT examples kept (metadata.correct=1 only; kept/in file: airline 2/3, retail 1/2, telecom 2/3)")


# --- malformed rows: one message naming <file>:<line> ---------------------------------------

def _set(path: list, value):
    def spoil(row: dict) -> None:
        node = row
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return spoil


def _drop(key: str):
    return lambda row: row.pop(key)


# case -> (how line 3 is spoilt, words the message must hold after "<file>:3: ")
BAD_ROWS = {
    "line is not JSON": (None, "not a JSON object"),
    "no messages": (_drop("messages"), "no messages"),
    "no answer": (_drop("answer"), "no answer object"),
    "no metadata": (_drop("metadata"), "no metadata object"),
    "unknown role": (_set(["messages", 1, "role"], "agent"), "messages[1] has role 'agent'"),
    "first message not system": (_set(["messages", 0, "role"], "user"), "messages[0] has role 'user'"),
    "empty answer": (_set(["answer", "tool_calls"], []), "answer has neither content nor tool_calls"),
    "call without name": (_set(["answer", "tool_calls", 0], {"arguments": {}}), "answer tool_calls[0] has no name"),
    "arguments not JSON": (_set(["answer", "tool_calls", 0, "arguments"], "{user_id:"),
                           "answer tool_calls[0] (get_user_details): arguments are not valid JSON"),
    "correct not 0/1": (_set(["metadata", "correct"], "yes"), "metadata.correct is 'yes'"),
    "no domain": (lambda r: r.update(metadata={"correct": 1}), "no domain"),
    "unknown domain": (_set(["metadata", "source_dialog_id"], "banking_dialog_1"), "domain 'banking' is not one of tau2's"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_malformed_row_gets_one_message_naming_file_and_line(case, tmp_path):
    root = tmp_path / "data"
    file = write_sft(root)
    spoil, words = BAD_ROWS[case]
    row = json.loads(file.read_text().splitlines()[2])
    if spoil:
        spoil(row)
    replace_line_of(file, 3, json.dumps(row) if spoil else "{not json")
    with pytest.raises(ConfigError) as error:
        checked(compose(["mode=sft", "data=areal_tau2", f"data.path={root}", "tracking=none"]))
    assert error.value.key == "data.path"
    assert error.value.problem.startswith(f"{file.resolve()}:3: {words}"), error.value.problem
    assert error.value.fix


def replace_line_of(file: Path, line: int, text: str) -> None:
    lines = file.read_text().splitlines()
    lines[line - 1] = text
    file.write_text("\n".join(lines) + "\n")


def test_sft_needs_the_areal_data_group(folder):
    with pytest.raises(ConfigError) as error:
        checked(compose(["mode=sft", "tracking=none"]))
    assert error.value.key == "data" and "data=areal_tau2 data.path=" in error.value.fix


def test_sft_config_is_areals_with_the_recipe(folder):
    exp = checked(compose(["mode=sft", "data=areal_tau2", f"data.path={folder}", "tracking=none",
                           "sft.lr=2e-5", "sft.epochs=3", "sft.batch_size=4"])).config
    config = sft_config(exp)
    from areal.api.cli_args import SFTConfig, TrainEngineConfig

    assert type(config) is SFTConfig and type(config.actor) is TrainEngineConfig
    assert (config.actor.optimizer.lr, config.actor.optimizer.lr_scheduler_type) == (2e-5, "cosine")
    assert (config.total_train_epochs, config.total_train_steps) == (3, None)
    assert config.train_dataset.batch_size == 4 and config.valid_dataset is None
    assert config.experiment_name == "tau2-qwen3-1.7b-areal-tau2-sft"
    assert config.saver.experiment_name == config.experiment_name
    assert config.actor.path == exp.actor.path and config.actor.backend == exp.actor.backend


# --- the command ----------------------------------------------------------------------------

STAND_IN = ["sft._target_=helpers.recording_trainer.RecordingSFTTrainer", "trainer.cpu_only=true"]


def test_sft_reaches_the_trainer_with_the_kept_rows_and_the_recipe(cli, folder, qwen3, tokenizer, tmp_path):
    args = ["mode=sft", "data=areal_tau2", f"data.path={folder}", "data.domains=[airline,telecom]",
            f"model.path={qwen3}", "tracking=none", f"cluster.fileroot={tmp_path}/exp", "sft.lr=2e-5",
            "sft.batch_size=2"]
    result = cli(*STAND_IN, *args, cwd=tmp_path, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "exp" / "tau2-qwen3-1.7b-areal-tau2-sft" / "trial0"
    call = json.loads((run_dir / SFT_RECORD_NAME).read_text())
    assert call["config_type"] == "areal.api.cli_args.SFTConfig"
    config = call["config"]
    assert config["actor"]["optimizer"]["lr"] == 2e-5
    assert config["actor"]["optimizer"]["lr_scheduler_type"] == "cosine"
    assert config["total_train_epochs"] == 10
    assert config["train_dataset"]["type"] == "sft" and config["tokenizer_path"] == str(qwen3)
    # the correct airline and telecom rows (lines 1, 3, 6, 7), tokenised with the model's template
    loaded = areal_sft.load(str(folder), None, correct_only=True)
    expected = [tokenised(e, tokenizer) for e in loaded.examples if e.domain in ("airline", "telecom")]
    assert call["train_rows"] == expected
    # the SFTConfig written for the dry run's reader, and the next command
    written = yaml.safe_load((run_dir / "areal_sft_config.yaml").read_text())
    assert written["actor"]["optimizer"]["lr"] == 2e-5
    saved = tmp_path / "exp" / "checkpoints"
    checkpoint = next(saved.glob("*/tau2-qwen3-1.7b-areal-tau2-sft/trial0/default/epoch0epochstep0globalstep1"))
    assert ("SFT: 4 SFT examples kept (metadata.correct=1 only; kept/in file: airline 2/3, telecom 2/3; "
            "left out: retail); 4 rows tokenised") in result.stdout
    assert result.stdout.rstrip().endswith(
        f"python -m tau2train.run trainer.cpu_only=true data=areal_tau2 data.path={folder} "
        f"'data.domains=[airline,telecom]' model.path={qwen3} tracking=none cluster.fileroot={tmp_path}/exp "
        f"actor.path={checkpoint}")


def test_dry_run_plans_rows_per_domain_and_writes_the_sft_config(cli, folder, tmp_path):
    result = cli("dry_run=true", "mode=sft", "data=areal_tau2", f"data.path={folder}", "tracking=none",
                     f"cluster.fileroot={tmp_path}/exp", "sft.batch_size=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 SFT examples kept (metadata.correct=1 only; kept/in file: airline 2/3, retail 1/2, telecom 2/3)" in out
    assert "10 epochs, lr 1e-05 cosine" in out
    config = tmp_path / "exp" / "tau2-qwen3-1.7b-areal-tau2-sft" / "trial0" / "areal_sft_config.yaml"
    assert f"AReaL SFT config  {config}" in out
    from areal.api.cli_args import SFTConfig

    loaded = yaml.safe_load(config.read_text())
    assert set(loaded) <= {f for f in SFTConfig.__dataclass_fields__}
    assert loaded["total_train_epochs"] == 10 and loaded["actor"]["optimizer"]["lr"] == 1e-5


def test_fewer_examples_than_one_batch_are_refused_before_anything_is_written(cli, folder, tmp_path):
    """AReaL drops the last incomplete batch: 5 examples in batches of 64 trained no step at all,
    and its trainer still said 'Training completes'."""
    result = cli("mode=sft", "data=areal_tau2", f"data.path={folder}", "tracking=none",
                 f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: sft.batch_size=64: the SFT file holds 5 examples to train on")
    assert "fix:   set sft.batch_size=5 or lower" in result.stderr
    assert not (tmp_path / "exp").exists()


def test_a_bad_sft_row_stops_the_command_with_status_2_and_nothing_written(cli, tmp_path):
    root = tmp_path / "data"
    file = write_sft(root)
    replace_line_of(file, 5, '{"messages": []}')
    result = cli("dry_run=true", "mode=sft", "data=areal_tau2", f"data.path={root}", "tracking=none",
                     f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: data.path='{root}': {file.resolve()}:5: no messages")
    assert not (tmp_path / "exp").exists()

