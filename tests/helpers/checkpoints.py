"""Checkpoints where AReaL's own saver puts them, for evaluations of a "trained" run."""

from __future__ import annotations

import json
from pathlib import Path


def save_checkpoints(fileroot: Path, experiment: str, trial: str, steps: list[int]) -> dict[int, Path]:
    """Model folders at AReaL's own paths (its Saver's path function), one per step, and AReaL's
    resume state beside them (not a model to serve)."""
    from areal.utils.saver import Saver

    saved = {}
    for step in steps:
        path = Path(Saver.get_model_save_path(experiment, trial, str(fileroot), 0, step - 1, step))
        (path / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
        saved[step] = path
    Path(Saver.get_recover_checkpoint_path(experiment, trial, str(fileroot))).mkdir(parents=True, exist_ok=True)
    return saved
