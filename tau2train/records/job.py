"""<run_dir>/job.json: one run's state as its submitter and the job itself see it.

The submitter writes SUBMITTED (with the Slurm job id and log paths); the job writes RUNNING
when it starts (again after a requeue), then COMPLETED, FAILED or REQUEUED. A run on this
machine (tau2train.launch.clusters.local) writes RUNNING, then COMPLETED or FAILED, with no Slurm id.
`python -m tau2train.reports.sweep` reads these files; nothing else keeps state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tau2train.records.files import write_atomic
from tau2train.records.layout import job_record_file


class JobState(str, enum.Enum):
    """A run's state as job.json records it (the file holds the value)."""

    SUBMITTED = "submitted"  # the submitter: in Slurm's queue
    RUNNING = "running"  # the job: started (again, after a requeue)
    COMPLETED = "completed"
    FAILED = "failed"
    REQUEUED = "requeued"  # submitit's checkpoint hook requeued it (preempted or timed out)

    @property
    def ended(self) -> bool:
        """Whether the run will not change this record again (its Slurm job is not asked)."""
        return self in (JobState.COMPLETED, JobState.FAILED)


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """One run's job.json. What the run is (mode, names, overrides, splits) is written by
    whoever writes first; the rest by the submitter and the job as the run goes."""

    state: JobState | None = None
    mode: str | None = None
    experiment_name: str | None = None
    trial_name: str | None = None
    overrides: tuple[str, ...] = ()
    train_split: str | None = None
    valid_split: str | None = None
    reward: str | None = None  # the reward group's choice (training's reward; an evaluation's is tau2's own)
    slurm_job_id: str | None = None
    host: str | None = None  # the machine the run ran on (its latest start)
    stdout: str | None = None  # the job's log files (Slurm runs)
    stderr: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None  # "<type>: <message>" of what made the run fail
    starts: int = 0  # how often the job started: more than 1 after a requeue

    @property
    def ended(self) -> bool:
        """Whether the run recorded its end (then its Slurm job need not be asked)."""
        return self.state is not None and self.state.ended

    @classmethod
    def from_json(cls, data: Any) -> JobRecord:
        """The record a file's JSON holds; keys this version does not know are ignored, and
        the ones it lacks (older files) take their defaults. ValueError if it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if known.get("state") is not None:
            known["state"] = JobState(known["state"])
        known["overrides"] = tuple(known.get("overrides") or ())
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value if self.state else None
        data["overrides"] = list(self.overrides)
        return data


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def read_job_record(run_dir: str | Path) -> JobRecord:
    """The run's record (an empty one before anything wrote it); ValueError when the file
    is not a job record."""
    path = job_record_file(run_dir)
    if not path.exists():
        return JobRecord()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg})") from None
    return JobRecord.from_json(data)


def update_job_record(run_dir: str | Path, **changes: Any) -> JobRecord:
    """Set `changes` (JobRecord's fields) in the record, written whole: readers never see
    half a file."""
    record = dataclasses.replace(read_job_record(run_dir), **changes)
    write_atomic(job_record_file(run_dir), json.dumps(record.to_json(), indent=2))
    return record


def record_restorer(run_dir: str | Path) -> Callable[[], None]:
    """What puts the run's record back as it is now: the file as it was, or none, and none of
    the directories writing it made (for a run that refuses its input as it starts: bad input
    leaves nothing behind)."""
    path = job_record_file(run_dir)
    before = path.read_text() if path.exists() else None
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first

    def restore() -> None:
        if before is not None:
            write_atomic(path, before)
            return
        path.unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):  # one the run wrote in too: kept
                folder.rmdir()

    return restore
