"""<run_dir>/job.json: one run's state as its submitter and the job itself see it.

The submitter writes "submitted" (with the Slurm job id and log paths); the job writes
"running" when it starts (again after a requeue), then "completed", "failed" or
"requeued". `python -m tau2train.reports.sweep` reads these files; nothing else keeps state.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from tau2train.records.files import write_atomic
from tau2train.records.layout import job_record_file


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def read_job_record(run_dir: str | Path) -> dict[str, Any]:
    path = job_record_file(run_dir)
    return json.loads(path.read_text()) if path.exists() else {}


def update_job_record(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the record (written whole: readers never see half a file)."""
    record = {**read_job_record(run_dir), **fields}
    write_atomic(job_record_file(run_dir), json.dumps(record, indent=2))
    return record
