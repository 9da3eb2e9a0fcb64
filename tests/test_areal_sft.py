"""AReaL's own SFTTrainer, end to end on this CPU machine: `python -m tau2train.run mode=sft`
fine-tunes the tiny Qwen3 (tau2train/serving/tiny_qwen.py, here with Qwen3's real chat template) on SFT
rows in the released format for two steps, AReaL's saver writes a Hugging Face checkpoint, and
the command prints the RL run that starts from it.

Real: tau2train's CLI, composition, validation, the SFT loader and tokeniser, AReaL's
SFTTrainer with its local scheduler, RPC worker, FSDP engine (CPU), saver. The rows are the
fixture's shape on τ²'s small `mock` domain with a short system prompt, so that a sequence
stays a few hundred tokens (the logits of Qwen's 152k vocabulary dominate CPU memory).
Runtime: ~4 minutes on 2 cores (one AReaL start-up).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.areal_tau2 import openai_call, plain_call
from helpers.areal_run import ANSI, run_env, step_stats
from tau2train.serving.tiny_qwen import tiny_qwen_dir

from tau2train.records import checkpoints
from tau2train.records.areal_sft import SFT_FILE

pytestmark = [pytest.mark.areal, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
EXPERIMENT = "tau2-tiny-qwen3-areal-tau2-sft"


def mock_row(n: int, answer: dict) -> str:
    history = [
        {"role": "system", "content": "You are a task-manager agent. Be brief."},
        {"role": "user", "content": f"Please create task number {n} for user_1."},
    ]
    metadata = {"source_dialog_id": f"mock_dialog_{n}", "turn_index": 1, "correct": 1, "reward": 1.0}
    return json.dumps({"messages": history, "answer": {"role": "assistant", **answer}, "metadata": metadata})


def write_rows(root: Path) -> None:
    root.mkdir(parents=True)
    args = {"user_id": "user_1", "title": "Task"}
    lines = [
        mock_row(1, {"content": "", "thinking": "Create it.", "tool_calls": [plain_call("create_task", args)]}),
        mock_row(2, {"content": "", "thinking": "Create it.", "tool_calls": [openai_call("create_task", args, "c2")]}),
        mock_row(3, {"content": "Done: the task is created.", "thinking": "It worked."}),
        mock_row(4, {"content": "Which title should it have?", "thinking": ""}),
    ]
    (root / SFT_FILE).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """The tiny Qwen3 with Qwen3's real chat template."""
    target = tmp_path_factory.mktemp("tiny-qwen3-template") / "model"
    shutil.copytree(tiny_qwen_dir(), target)
    (target / "chat_template.jinja").write_text((TESTS / "helpers" / "qwen3_chat_template.jinja").read_text())
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


def test_mode_sft_trains_with_areals_sft_trainer_and_prints_the_rl_command(model, tmp_path):
    data = tmp_path / "AReaL-tau2-data"
    write_rows(data)
    env, _ = run_env(tmp_path / "work", "sft")
    args = [
        "mode=sft", "data=areal_tau2", f"data.path={data}", "tracking=none",
        f"model.path={model}", "model.name=tiny-qwen3", "trial_name=cpu0",
        "model.engine=fsdp", "allocation.rollout=sglang:d1", "allocation.actor=fsdp:d1",
        "cluster.n_gpus_per_node=2", "trainer.cpu_only=true",
        f"cluster.fileroot={tmp_path}/experiments", f"cluster.name_resolve.nfs_record_root={tmp_path}/name_resolve",
        "actor.scheduling_spec.0.cmd=python -m helpers.cpu_rollout_worker",
        "actor.attn_impl=sdpa", "actor.dtype=float32", "actor.enable_tree_training=false",
        "actor.gradient_checkpointing=false", "actor.pad_to_maximum=false",
        "actor.mb_spec.max_tokens_per_mb=1024", "train_dataset.num_workers=0", "train_dataset.pin_memory=false",
        # 4 rows, 2 a step, 1 epoch: two steps, a checkpoint after each epoch
        "sft.batch_size=2", "sft.epochs=1", "sft.max_length=1024", "sft.lr=1e-3",
    ]
    result = subprocess.run([sys.executable, "-m", "tau2train.run", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert "SFT: 4 SFT examples kept (metadata.correct=1 only; kept/in file: mock 4/4); 4 rows tokenised" in result.stdout
    # two optimizer steps, each logged by AReaL's stats logger
    log = ANSI.sub("", result.stdout + result.stderr)
    assert sorted(step_stats(log)) == [1, 2], tail
    # AReaL's saver wrote the epoch's checkpoint after its last step (named by the 0-based step)
    root = checkpoints.run_checkpoint_root(f"{tmp_path}/experiments", EXPERIMENT, "cpu0")
    found = checkpoints.checkpoints(root)
    assert [p.name for p in found.values()] == ["epoch0epochstep1globalstep1"], tail
    saved = found[1]
    assert (saved / "config.json").is_file() and any(saved.glob("*.safetensors"))
    last = result.stdout.rstrip().splitlines()
    assert last[-3] == f"SFT finished: checkpoint of step 1 at {saved}"
    assert last[-1].strip().startswith("python -m tau2train.run data=areal_tau2")
    assert last[-1].strip().endswith(f"actor.path={saved}")
    assert "mode=sft" not in last[-1] and "sft." not in last[-1]
