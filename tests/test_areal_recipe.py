"""`make run`'s recipe, shortened: `python -m tau2train.run experiment=cpu_miniature` with the
fewest steps that still pass through every stage (1 SFT epoch, 2 RL steps, 1 trial), as a user
runs it, in its own process. Real: the tiny Qwen3, the rule-based user simulator, the gold
replays, AReaL's SFT and PPO trainers with the CPU server, tau2's environment and evaluator,
the evaluation of three checkpoints through the CPU server's chat API, tau2train-compare.

Every completion in it is sampled by the policy; nothing is forced. The short run shows each
stage's outputs, not learning (benchmarks/learning.py measures that): 2 of the 4 tasks in
each RL step, 2 episodes each. Runtime: ~6 minutes on 2 cores (two AReaL start-ups).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.areal_run import ANSI

from tau2train.records import checkpoints

pytestmark = [pytest.mark.areal, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SHORT = ["sft.epochs=1", "total_train_steps=2", "train_dataset.batch_size=2", "gconfig.n_samples=2",
         "eval.num_trials=1"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    # a dot in the path, as users' have (a space is refused: tests/test_validation.py)
    root = tmp_path_factory.mktemp("recipe-v1.0")
    args = ["experiment=cpu_miniature", f"cluster.fileroot={root}/runs",
            f"cluster.name_resolve.nfs_record_root={root}/nr", "trial_name=ci0", *SHORT]
    done = subprocess.run([sys.executable, "-m", "tau2train.run", *args], cwd=root, capture_output=True,
                          text=True, timeout=1500, env=_env())
    return root, done, ANSI.sub("", done.stdout)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline",
            "HF_HUB_OFFLINE": "1", "TORCHDYNAMO_DISABLE": "1"}


def test_make_run_without_arguments_is_the_miniature_recipe():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # not make test's own make
    shown = subprocess.run(["make", "-n", "--no-print-directory", "run"], cwd=REPO, capture_output=True,
                           text=True, timeout=60, env=env)
    [run] = [line for line in shown.stdout.splitlines() if "-m tau2train.run" in line]
    assert run.endswith("-m tau2train.run experiment=cpu_miniature"), shown.stdout


def test_every_stage_runs_and_says_so(recipe):
    root, done, out = recipe
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    stages = re.findall(r"^\[(\d+)\] ([a-z ]+): ", out, re.MULTILINE)
    assert [name for _, name in stages] == [
        "model", "user simulator", "sft data", "sft", "train", "eval base", "eval sft", "eval rl"]
    assert "rule-based-user-mock" in out
    assert re.search(r"sft data: 8 rows from 4 gold replays", out)
    # a line per training step, of both trainers
    assert re.findall(r"^ +sft step (\d+)/2$", out, re.MULTILINE) == ["1", "2"]
    assert re.findall(r"^ +train step (\d+)/2, mean reward [0-9.]+$", out, re.MULTILINE) == ["1", "2"]
    # each stage's command as a user would type it
    assert re.search(r"mode=train actor\.path=\S+globalstep1 ", out)


def test_each_stage_leaves_its_outputs(recipe):
    root, _, _ = recipe
    run = root / "runs" / "tau2-cpu-miniature" / "ci0"
    rows = (run / "recipe" / "sft-data" / "tau2_sft_train.jsonl").read_text().splitlines()
    assert len(rows) == 8 and all(json.loads(r)["metadata"]["correct"] == 1 for r in rows)
    sft = checkpoints.checkpoints(checkpoints.run_checkpoint_root(f"{root}/runs", "tau2-cpu-miniature-sft", "ci0"))
    rl = checkpoints.checkpoints(checkpoints.run_checkpoint_root(f"{root}/runs", "tau2-cpu-miniature", "ci0"))
    assert len(sft) == 1 and len(rl) == 1  # after the last step of each
    summary = json.loads((run / "recipe" / "summary.json").read_text())
    assert set(summary["pass1"]) == {"base", "sft", "rl"}
    assert all(0.0 <= v <= 1.0 for v in summary["pass1"].values())
    assert summary["evals"]["rl"].startswith(str(run / "eval"))
    assert sorted(summary["reward_by_step"]) == ["1", "2"]
    assert (run / "recipe" / "reward_by_step.png").read_bytes()[:4] == b"\x89PNG"
    for stage in ("sft", "train", "eval_base", "eval_sft", "eval_rl"):
        assert (run / "recipe" / f"{stage}.log").stat().st_size > 0


def test_the_table_closes_the_output(recipe):
    _, _, out = recipe
    table = out[out.index("\ntau2train recipe: tiny-qwen3-h128 on τ² mock"):]
    assert "4 tasks, 1 trial each" in table and "not whether it generalises" in table
    for label in ("base", "sft", "rl"):
        assert re.search(rf"^  {label} +\d+\.\d", table, re.MULTILINE), table
    assert re.search(r"^  RL − SFT +[+-]\d+\.\d points, 95% interval", table, re.MULTILINE)
    assert re.search(r"^  wall time +model \d+ s, user simulator \d+ s, sft data \d+ s, sft \d+ s, train \d+ s",
                     table, re.MULTILINE)
