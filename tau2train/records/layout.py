"""Where a run's files go, named once. A run directory (`run_dir`, by default
`<cluster.fileroot>/<experiment_name>/<trial_name>`) holds:

    areal_config.yaml                   the resolved PPOConfig AReaL loads (every launch, dry runs too)
    job.json                            the job record (submitted / running / completed / ...)
    generated/<split>/<task>/*.json     one RunInfo per training or validation episode (+ .txt)
    eval/<domain>-<split>-<model>-<time>/
        results.json                    mode=eval's episodes in tau2's Results format
        metrics.json                    pass^k, pass@k, average reward ± SE, failures, task set
        submission.json                 that domain's τ²-bench leaderboard entry (tau2train-submission merges)
        generated/...                   those episodes' RunInfo files
"""

from __future__ import annotations

import re
from pathlib import Path

AREAL_CONFIG_NAME = "areal_config.yaml"
# mode=sft: the SFTConfig handed to AReaL's SFT trainer
AREAL_SFT_CONFIG_NAME = "areal_sft_config.yaml"
JOB_RECORD_NAME = "job.json"
GENERATED_DIR = "generated"
EVAL_DIR = "eval"
RESULTS_NAME = "results.json"
METRICS_NAME = "metrics.json"
SUBMISSION_NAME = "submission.json"
EVAL_STAMP = re.compile(r"\d{8}-\d{6}$")  # the time suffix of an evaluation's directory


def path_safe(name: str) -> str:
    """`name` as one portable path component (task ids are free text: telecom's hold
    brackets and '|'; model names hold '/')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "task"


def areal_config_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / AREAL_CONFIG_NAME


def areal_sft_config_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / AREAL_SFT_CONFIG_NAME


def job_record_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / JOB_RECORD_NAME


def generated_dir(run_dir: str | Path) -> Path:
    """Where a training run's episodes (and an evaluation's, under its own dir) are written."""
    return Path(run_dir) / GENERATED_DIR


def eval_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / EVAL_DIR


def eval_dir(run_dir: str | Path, domain: str, split: str, model: str, stamp: str) -> Path:
    """One evaluation's directory."""
    return eval_root(run_dir) / f"{domain}-{split}-{path_safe(model)}-{stamp}"


def eval_stamp(path: str | Path) -> str:
    """The time (YYYYmmdd-HHMMSS) an evaluation directory is named with; "" if none: newer
    evaluations sort later."""
    found = EVAL_STAMP.search(Path(path).name)
    return found.group() if found else ""


def metrics_files(path: str | Path) -> list[Path]:
    """metrics.json of the evaluation directory `path`, or of every evaluation under it (a run
    directory, an experiment or sweep root)."""
    own = Path(path) / METRICS_NAME
    return [own] if own.is_file() else sorted(Path(path).rglob(METRICS_NAME))
