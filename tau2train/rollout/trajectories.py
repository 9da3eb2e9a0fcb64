"""Each episode's record on disk, as JSON for tools and as text for people.

Layout: <run_dir>/generated/<split>/<task id>/<time>-<episode id>.{json,txt}; every file is
written whole or not at all, so a crashed worker never leaves a truncated trajectory.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tau2train.records.files import write_atomic
from tau2train.records.layout import path_safe
from tau2train.schemas import RunInfo


def write_run_info(dump_dir: str | Path, info: RunInfo) -> Path:
    """Write `info` under `dump_dir`; returns the JSON file's path."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder = Path(dump_dir) / path_safe(info.split or "nosplit") / path_safe(info.task_id)
    write_atomic(folder / f"{stem}.txt", str(info))
    return write_atomic(folder / f"{stem}.json", info.to_json())
