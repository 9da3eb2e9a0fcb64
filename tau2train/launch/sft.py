"""`mode=sft`: AReaL's SFT trainer on the AReaL-tau2-data SFT file, loss on the answer only.

Each kept example (tau2train.config.areal_sft) is rendered with the model's own chat template:
the dialog before the answer as the prompt (`add_generation_prompt=True`), then the answer
turn; `input_ids` are the prompt's tokens followed by the answer's, `loss_mask` 0 on the
prompt and 1 on the answer (its thinking, content, tool calls and end-of-turn token), as
AReaL's own SFT datasets (areal/dataset/gsm8k.py) hand them to its trainer. Thinking goes in
as `reasoning_content` (Qwen3's template puts it in the answer's <think> block and drops the
thinking of turns before the last user query itself). The domain's tau2 tools are passed to
the template's `tools=` unless the row's system prompt already lists them (the released rows'
do: the dataset card's "<system prompt with policy and tools>").

The trainer class is a config entry (`sft._target_`, AReaL's SFTTrainer by default): the GPU
boundary, where tests put a recording stand-in. After training, the command that starts RL
from the last checkpoint AReaL's saver wrote is printed.
"""

from __future__ import annotations

import dataclasses
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from tau2train.config import areal_sft
from tau2train.config.checked import Checked
from tau2train.config.errors import ConfigError
from tau2train.launch.plan import plain_config, write_yaml
from tau2train.launch.train import check_local_gpus, make_storage_dirs, trainer_class
from tau2train.records import areal_sft as sft_rows
from tau2train.records import checkpoints
from tau2train.records.layout import areal_sft_config_file
from tau2train.records.overrides import override_key
from tau2train.reports.tables import align
from tau2train.schemas import ExperimentConfig

# Overrides of the SFT command that the RL command after it does not repeat.
SFT_ONLY_OVERRIDES = ("mode", "dry_run", "actor.path", "experiment_name")


def sft_config(exp: ExperimentConfig):
    """AReaL's SFTConfig: the experiment's shared settings (names, cluster, scheduler, saver,
    stats logger, ...), its actor's TrainEngineConfig fields, and from `sft.*` the epochs,
    the optimizer's learning rate and schedule and the batch."""
    from areal.api.cli_args import SFTConfig, TrainEngineConfig

    s = exp.sft
    optimizer = dataclasses.replace(
        exp.actor.optimizer, lr=s.lr, lr_scheduler_type=s.lr_scheduler_type,
        warmup_steps_proportion=s.warmup_steps_proportion,
    )
    actor = TrainEngineConfig(**{
        f.name: getattr(exp.actor, f.name) for f in dataclasses.fields(TrainEngineConfig)
    } | {"optimizer": optimizer})
    dataset = dataclasses.replace(
        exp.train_dataset, path=str(sft_rows.sft_file(exp.data.path)), split="sft", type="sft",
        batch_size=s.batch_size, max_length=s.max_length,
    )
    shared = {
        f.name: getattr(exp, f.name) for f in dataclasses.fields(SFTConfig)
        if f.name not in ("actor", "train_dataset", "valid_dataset", "total_train_epochs", "total_train_steps")
    }
    return SFTConfig(**shared, actor=actor, train_dataset=dataset, valid_dataset=None,
                     total_train_epochs=s.epochs, total_train_steps=None)


def write_sft_config(exp: ExperimentConfig) -> Path:
    return write_yaml(plain_config(sft_config(exp)), areal_sft_config_file(exp.run_dir))


class TemplateNotPrefixStable(ValueError):
    """The chat template renders the dialog differently once the answer follows it."""


# Examples tokenised into one Arrow chunk at a time.
CHUNK = 256


def tokenise(example: sft_rows.Example, tokenizer: Any, tools: list[dict] | None) -> dict[str, list[int]]:
    """One example as AReaL's SFT row: `input_ids` (prompt then answer tokens) and `loss_mask`
    (1 exactly on the answer turn: thinking, content, tool calls, end-of-turn token)."""
    messages = [dict(m) for m in example.messages]
    names = [t["function"]["name"] for t in tools or []]
    offered = None if not tools or sft_rows.system_lists_tools(messages[0]["content"], names) else tools
    prompt = tokenizer.apply_chat_template(messages, tools=offered, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, dict(example.answer)], tools=offered, tokenize=False)
    if not full.startswith(prompt):
        raise TemplateNotPrefixStable(
            f"line {example.line}: the chat template renders the dialog differently once the answer follows it"
        )
    answer = full[len(prompt):]
    end = tokenizer.eos_token
    if end and end in answer:  # the turn ends at its end-of-turn token (not the newline after)
        answer = answer[: answer.rindex(end) + len(end)]
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    answer_ids = tokenizer.encode(answer, add_special_tokens=False)
    return {"input_ids": prompt_ids + answer_ids, "loss_mask": [0] * len(prompt_ids) + [1] * len(answer_ids)}


def sft_dataset(loaded: areal_sft.SftFile, tokenizer: Any, max_length: int) -> tuple[Any, dict[str, Any]]:
    """The kept examples tokenised (those over `max_length` tokens left out) as the Dataset
    AReaL's SFTTrainer takes, and their stats. Built in chunks of CHUNK rows: as Python lists
    of ints the whole file's rows would take ~9x their Arrow size at their peak, ~14 GB for the
    released file (benchmarks/areal_sft.py), so only one chunk is ever held that way."""
    from datasets import Dataset, concatenate_datasets

    from tau2train.rollout.players import agent_tool_schemas

    tools = {d: agent_tool_schemas(d) for d in sorted({e.domain for e in loaded.examples})}
    chunks, rows, lengths, too_long, answer_tokens = [], [], [], 0, 0
    for example in loaded.examples:
        try:
            row = tokenise(example, tokenizer, tools[example.domain])
        except TemplateNotPrefixStable as e:
            raise ConfigError("tokenizer_path", tokenizer.name_or_path, f"{loaded.file}:{e}",
                              valid="a chat template that renders a dialog the same with and without its "
                              "next assistant turn (Qwen3's does)",
                              fix="train a model whose template is prefix-stable, or set its chat_template") from None
        if len(row["input_ids"]) > max_length:
            too_long += 1
            continue
        rows.append(row)
        lengths.append(len(row["input_ids"]))
        answer_tokens += sum(row["loss_mask"])
        if len(rows) == CHUNK:
            chunks.append(Dataset.from_list(rows))
            rows = []
    if rows or not chunks:
        chunks.append(Dataset.from_list(rows))
    stats = {"rows": len(lengths), "too_long": too_long,
             "tokens_mean": round(statistics.fmean(lengths)) if lengths else 0,
             "tokens_max": max(lengths, default=0),
             "answer_tokens": answer_tokens}
    return concatenate_datasets(chunks) if len(chunks) > 1 else chunks[0], stats


def sft_plan(checked: Checked) -> str:
    """mode=sft's dry run: the AReaL SFT config written, and the plan."""
    return render_sft_plan(checked, write_sft_config(checked.config))


def render_sft_plan(checked: Checked, config_path: Path) -> str:
    """The plan of a validated SFT run: rows used per domain, the AReaL SFT config, where
    checkpoints go."""
    exp, layout, loaded = checked.config, checked.layout, checked.sft_data
    s = exp.sft
    root = checkpoints.run_checkpoint_root(exp.cluster.fileroot, exp.experiment_name, exp.trial_name)
    return "\n".join([
        "tau2train SFT plan (dry run: nothing was started or submitted)",
        "",
        *align([
            ["model", checked.choices["model"], f"{exp.actor.path} (trainer {exp.actor.backend})"],
            ["data", str(loaded.file), areal_sft.summary(loaded)],
            ["recipe", "sft.*", f"{s.epochs} epochs, lr {s.lr} {s.lr_scheduler_type} "
             f"(warm-up {s.warmup_steps_proportion}), {s.batch_size} examples a step, "
             f"at most {s.max_length} tokens an example (tokens counted when training starts)"],
            ["loss", "answer only", "loss_mask 1 on the answer turn (thinking, content, tool calls, end of turn)"],
            ["trainer", s._target_, f"cluster {checked.choices['cluster']}, scheduler '{exp.scheduler.type}'"],
            ["GPUs", f"{layout.actor.parallel.world_size} of {layout.n_gpus}",
             "the trainer's; SFT runs no inference, so the rollout's "
             f"{layout.rollout.parallel.world_size} sit idle unless allocation.actor is given them"
             if layout.rollout.parallel.world_size else "the trainer's"],
            ["experiment", exp.experiment_name, f"trial {exp.trial_name}"],
        ]),
        "",
        "Where things go",
        *align([
            ["AReaL SFT config", str(config_path)],
            ["checkpoints", str(root)],
            ["then RL", next_command(checked, root / "<epoch…globalstep…>")],
        ]),
    ])


def next_command(checked: Checked, checkpoint: Path) -> str:
    """The RL run from `checkpoint`: this run's overrides, less the SFT-only ones."""
    kept = [o for o in checked.overrides
            if override_key(o) not in SFT_ONLY_OVERRIDES and override_key(o).split(".", 1)[0] != "sft"]
    return shlex.join(["python", "-m", "tau2train.run", *kept, f"actor.path={checkpoint}"])


def run_sft(checked: Checked) -> None:
    from transformers import AutoTokenizer

    exp, loaded = checked.config, checked.sft_data
    trainer_cls = trainer_class(exp.sft._target_, key="sft._target_")
    check_local_gpus(exp)
    tokenizer = AutoTokenizer.from_pretrained(exp.tokenizer_path)
    dataset, stats = sft_dataset(loaded, tokenizer, exp.sft.max_length)
    print(f"SFT: {areal_sft.summary(loaded)}; {stats['rows']} rows tokenised, "
          f"{stats['too_long']} over {exp.sft.max_length} tokens left out, "
          f"{stats['tokens_mean']} tokens on average (max {stats['tokens_max']}), "
          f"{stats['answer_tokens']} answer tokens trained on", flush=True)
    if not stats["rows"]:
        raise ConfigError("sft.max_length", exp.sft.max_length, "every example is longer than that",
                          fix=f"raise sft.max_length (the longest example has {stats['tokens_max']} tokens)")
    config = sft_config(exp)
    make_storage_dirs(exp)
    write_sft_config(exp)
    with trainer_cls(config, train_dataset=dataset) as trainer:
        trainer.train()
    root = checkpoints.run_checkpoint_root(exp.cluster.fileroot, exp.experiment_name, exp.trial_name)
    found = checkpoints.checkpoints(root)
    if not found:
        print(f"SFT finished; no model checkpoint under {root} (saver.freq_* saved none)", file=sys.stderr)
        return
    step, path = checkpoints.pick(found, checkpoints.LATEST, root)
    print(f"SFT finished: checkpoint of step {step} at {path}\nnext, RL from it:\n  {next_command(checked, path)}",
          flush=True)
