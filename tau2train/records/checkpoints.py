"""Where AReaL's saver puts a run's model checkpoints, and which one a step names.

AReaL (areal/utils/saver.py, `Saver.get_save_root` / `get_model_save_path`) writes each
checkpoint as a Hugging Face model folder

    <fileroot>/checkpoints/<user>/<experiment>/<trial>/default/epoch<E>epochstep<S>globalstep<G>/

(`recover_checkpoint/` beside them is the resume state, not a model to serve). Its own path
functions create the folders they name, so they are not called here: looking must not write.
tests/test_checkpoint_eval.py checks these paths against AReaL's saver.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

# the model name AReaL's saver saves the actor under
MODEL_NAME = "default"
CHECKPOINT_DIR = re.compile(r"^epoch(\d+)epochstep(\d+)globalstep(\d+)$")
LATEST = "latest"
# `eval.checkpoint_step=0`: the model training started from (actor.path)
BASE_STEP = 0


class NoCheckpoint(LookupError):
    """No checkpoint matches; the message says what there is."""


def run_checkpoint_root(fileroot: str, experiment_name: str, trial_name: str) -> Path:
    return Path(fileroot) / "checkpoints" / getpass.getuser() / experiment_name / trial_name / MODEL_NAME


def training_run_dir(checkpoint: str | Path) -> Path | None:
    """The run directory (<fileroot>/<experiment>/<trial>) of the training run that saved
    `checkpoint` (.../checkpoints/<user>/<experiment>/<trial>/default/epoch…globalstep<G>);
    None for a model folder AReaL's saver did not write."""
    path = Path(checkpoint)
    parts = path.parts
    if len(parts) < 7 or not CHECKPOINT_DIR.match(path.name) or parts[-2] != MODEL_NAME or parts[-6] != "checkpoints":
        return None
    return Path(*parts[:-6]) / parts[-4] / parts[-3]


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The global step in an AReaL checkpoint folder's name (None: not one)."""
    match = CHECKPOINT_DIR.match(Path(checkpoint).name)
    return int(match.group(3)) if match else None


def is_model_dir(path: Path) -> bool:
    """A Hugging Face model folder (what SGLang serves)."""
    return (path / "config.json").is_file()


def checkpoints(root: Path) -> dict[int, Path]:
    """AReaL's checkpoints under `root` (a run's `default/` folder, or the trial folder
    above it), by global step."""
    if (root / MODEL_NAME).is_dir() and not any(CHECKPOINT_DIR.match(p.name) for p in _dirs(root)):
        root = root / MODEL_NAME
    found = {}
    for path in _dirs(root):
        match = CHECKPOINT_DIR.match(path.name)
        if match and is_model_dir(path):
            found[int(match.group(3))] = path
    return dict(sorted(found.items()))


def _dirs(root: Path) -> list[Path]:
    try:
        return [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []


def parse_step(step: str | int | None) -> int | str | None:
    """`eval.checkpoint_step` as given: None, "latest", or a non-negative int."""
    if step is None or str(step) == LATEST:
        return None if step is None else LATEST
    text = str(step)
    if not text.isdigit():
        raise ValueError(f"{step!r} is neither {LATEST!r} nor a step number")
    return int(text)


def pick(found: dict[int, Path], step: int | str, where: Path) -> tuple[int, Path]:
    """The checkpoint of `step` (an int, or "latest") among `found`."""
    if not found:
        raise NoCheckpoint(f"no model checkpoint (epoch*globalstep*/ with config.json) under {where}")
    if step == LATEST:
        latest = max(found)
        return latest, found[latest]
    if step not in found:
        raise NoCheckpoint(
            f"no checkpoint of step {step} under {where}; saved steps: {', '.join(map(str, found))}"
        )
    return step, found[step]


# What fixes a Hugging Face model folder's behaviour besides its weights.
MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Each weight file is sampled, not read whole (a 7B model is 15 GB): this many chunks of CHUNK
# bytes, evenly spaced; any fine-tuning changes the weights in every one of them.
SAMPLES, CHUNK = 16, 1 << 16


def model_fingerprint(path: str | Path) -> str:
    """sha256 of a model folder's config and tokenizer files, its weight files' names and sizes,
    and SAMPLES evenly spaced chunks of each weight file; "" when `path` is not a folder."""
    import hashlib

    folder = Path(path)
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    for weights in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        size = weights.stat().st_size
        digest.update(f"{weights.name}\0{size}\0".encode())
        with weights.open("rb") as f:
            for i in range(SAMPLES):
                f.seek(size * i // SAMPLES)
                digest.update(f.read(CHUNK))
    return digest.hexdigest()
