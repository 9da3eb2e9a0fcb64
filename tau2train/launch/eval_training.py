"""What a tau2train checkpoint was trained on, for `mode=eval`: its training stages, followed
back from the evaluated checkpoint through each run's `actor.path` (RL runs: areal_config.yaml,
SFT runs: areal_sft_config.yaml, in the run directory beside the checkpoints), and the tasks
its RL episodes played (the run's generated/<train split>/<task>/ RunInfo files). An
evaluation then says when it scores tasks the checkpoint was trained on, and its leaderboard
entry is `custom` with these stages in its notes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tau2train.config.servers import ServedCheckpoint
from tau2train.records.checkpoints import checkpoint_step, training_run_dir
from tau2train.records.eval_report import Training
from tau2train.records.job import read_job_record
from tau2train.records.layout import areal_config_file, areal_sft_config_file, generated_dir, path_safe

# How far back the stages are followed (RL from SFT from RL ...).
MAX_STAGES = 4


def training(served: ServedCheckpoint | None, domain: str, scored: list[str]) -> Training | None:
    """The training of the checkpoint `served` (None: an endpoint, or a model folder no
    tau2train run saved); `scored`: the task ids the evaluation plays."""
    run_dir = training_run_dir(served.path) if served else None
    if run_dir is None:
        return None
    trained = trained_tasks(run_dir, domain)
    return Training(stages(Path(served.path)), sorted(trained), [t for t in scored if t in trained])


def stages(checkpoint: Path) -> list[str]:
    """Each training stage that led to `checkpoint`, the last first."""
    found = []
    for _ in range(MAX_STAGES):
        run_dir = training_run_dir(checkpoint)
        stage = describe_stage(run_dir, checkpoint_step(checkpoint)) if run_dir else None
        if stage is None:
            break
        text, start = stage
        found.append(text)
        checkpoint = Path(start)
    return found


def describe_stage(run_dir: Path, step: int | None) -> tuple[str, str] | None:
    """(how the run trained: kind, steps, data, start; the model it started from), or None
    when its config is not there to read."""
    for kind, file in (("RL", areal_config_file(run_dir)), ("SFT", areal_sft_config_file(run_dir))):
        try:
            config = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        data = config.get("train_dataset") or {}
        start = str((config.get("actor") or {}).get("path"))
        split = f" (split {data['split']})" if kind == "RL" and data.get("split") else ""
        return (f"{kind} (AReaL), {step} steps on {data.get('path')}{split}, from {start}; run {run_dir}", start)
    return None


def trained_tasks(run_dir: Path, domain: str) -> set[str]:
    """The `domain` task ids the run's training episodes played: one RunInfo read per task
    folder of the train split (job.json's; every split when it is not recorded)."""
    try:
        split = read_job_record(run_dir).train_split
    except ValueError:
        split = None
    root = generated_dir(run_dir)
    folders = (root / path_safe(split)).glob("*") if split else root.glob("*/*")
    found = set()
    for folder in folders:
        info = next(folder.glob("*.json"), None)
        try:
            episode = json.loads(info.read_text()) if info else {}
        except (OSError, ValueError):
            continue
        if episode.get("domain") == domain and episode.get("task_id") is not None:
            found.add(str(episode["task_id"]))
    return found
