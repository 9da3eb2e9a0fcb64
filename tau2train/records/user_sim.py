"""The record a running user-simulator server leaves on shared storage, and how configs read it.

`tau2train-user-sim` writes `<user_sim.record_file>` once the server answers
`GET /health`, and removes it when the server stops. Training and eval jobs take
`econfig.user_llm_base_url` from it through the `${tau2train.user_sim_url:<record>}`
resolver, so nobody copies URLs between terminals. Kept free of launcher code (and of
heavy imports): the config schemas import it for the resolver.

A record holds only what locates and stops the server (URL, host, port, job id or pid, log
paths, model names, start time); never its command line or environment, where keys live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tau2train.records.files import write_atomic

USER_SIM_URL_RESOLVER = "tau2train.user_sim_url"
RECORD_KEYS = (
    "url", "served_model_name", "model_path", "host", "port", "launcher", "slurm_job_id",
    "pid", "logs", "started_at",
)


def recorded_url(record_file: str | None) -> str | None:
    """The URL in the record, or None when no server is recorded there."""
    record = read_record(record_file) if record_file else None
    return record["url"] if record else None


def read_record(record_file: str | Path) -> dict[str, Any] | None:
    path = Path(record_file)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        if not isinstance(record, dict) or not isinstance(record.get("url"), str):
            raise ValueError("no 'url' in it")
    except ValueError as error:
        raise ValueError(
            f"the user-sim record {path} is unreadable ({error}); remove it and start the "
            "server again with `tau2train-user-sim`"
        ) from None
    return record


def write_record(record_file: str | Path, record: dict[str, Any]) -> Path:
    """Atomically (a reader never sees half a record); only the known, secret-free keys."""
    unknown = set(record) - set(RECORD_KEYS)
    if unknown:
        raise ValueError(f"not a user-sim record key: {sorted(unknown)}")
    return write_atomic(Path(record_file), json.dumps(record, indent=2) + "\n")


def remove_record(record_file: str | Path, owner: dict[str, Any]) -> bool:
    """Remove the record if it still describes this server (every key of `owner`, e.g. its
    Slurm job id or pid, matches): a newer server's record is left alone."""
    path = Path(record_file)
    try:
        record = read_record(path)
    except ValueError:
        record = None
    if record is None or any(record.get(key) != value for key, value in owner.items()):
        return False
    path.unlink(missing_ok=True)
    return True
