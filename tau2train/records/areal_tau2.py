"""The released AReaL-tau2-data folder (`inclusionAI/AReaL-tau2-data`) as it lies on disk, and
the dataset rows tau2train makes of it, named once for the launch side (validation, plan,
datasets) and the rollout side (the workflow plays a row):

    <data.path>/
        tau2_rl_train.jsonl         one τ² Task per line (+ db_path); evaluation_criteria is a
                                    JSON *string*; the domain is user_scenario.instructions.domain
        tau2_rl_database/*.json     airline / retail DB snapshots (tau2's FlightDB / RetailDB)
        tau2_rl_database/*.toml     telecom DB snapshots (TelecomDB)

Task ids repeat in the file, so a row is keyed by its line number (1-based). A dataset row
names the file and line (the worker parses that line: rows stay ~200 bytes, see
benchmarks/areal_tau2.py), its domain and its snapshot. Standard library only: validating a
row as a τ² Task is tau2's `Task.model_validate(task_fields(...))`, done by each side.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

RL_FILE = "tau2_rl_train.jsonl"
DB_DIR = "tau2_rl_database"
# The split name rows of the RL file carry (trajectories go to generated/<split>/...).
RL_SPLIT = "areal_tau2"
# The key of a line that is not a Task field: the row's snapshot, relative to the folder.
DB_PATH_KEY = "db_path"


class BadRow(ValueError):
    """A line of the RL file that is not a usable row; `problem` says why."""

    def __init__(self, file: str | Path, line: int, problem: str):
        self.file, self.line, self.problem = str(file), line, problem
        super().__init__(f"{file}:{line}: {problem}")


def rl_file(folder: str | Path) -> Path:
    return Path(folder) / RL_FILE


def task_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The τ² Task fields of one parsed line: evaluation_criteria parsed from its JSON
    string, db_path left out. Raises ValueError naming what is wrong."""
    fields = {k: v for k, v in record.items() if k != DB_PATH_KEY}
    criteria = fields.get("evaluation_criteria")
    if isinstance(criteria, str):
        try:
            fields["evaluation_criteria"] = json.loads(criteria)
        except json.JSONDecodeError as e:
            raise ValueError(f"evaluation_criteria is not valid JSON ({e})") from None
    return fields


# Where a line of the RL file states its domain, and its id, which starts with it: key paths.
RL_DOMAIN = ("user_scenario", "instructions", "domain")
RL_DOMAIN_IDS = (("id",),)


def row_domain(record: dict[str, Any], stated: tuple[str, ...] = RL_DOMAIN,
               ids: tuple[tuple[str, ...], ...] = RL_DOMAIN_IDS) -> str:
    """The τ² domain of a parsed line of either released file: the string at the key path
    `stated` (the RL file's user_scenario.instructions.domain, the SFT file's metadata.domain),
    else the prefix of the first per-domain id at one of the paths `ids` (`airline_dialog_42`
    -> airline). ValueError when the line has neither."""
    domain = _at(record, stated)
    if isinstance(domain, str) and domain:
        return domain
    for path in ids:
        value = _at(record, path)
        if isinstance(value, str) and "_" in value:
            return value.split("_", 1)[0]
    raise ValueError(f"no domain: {'.'.join(stated)} is missing and no "
                     f"{' or '.join('.'.join(path) for path in ids)} is a per-domain id like airline_dialog_42")


def _at(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a key path of a parsed line (None where the path breaks off)."""
    node: Any = record
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def parse_line(text: str) -> dict[str, Any]:
    """One line of the RL file as a JSON object (ValueError if it is not one)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a JSON object ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object (a {type(record).__name__})")
    return record


def dataset_row(file: Path, line: int, record: dict[str, Any], domain: str) -> dict[str, Any]:
    """The row AReaL's dataset holds for one line: what the workflow needs to play it."""
    return {
        "task_id": str(record.get("id", "")),
        "split": RL_SPLIT,
        "domain": domain,
        "data_file": str(file),
        "line": line,
        "db_path": str(Path(file).parent / record[DB_PATH_KEY]),
    }


def is_dataset_row(data: dict[str, Any]) -> bool:
    return "line" in data and "data_file" in data


_lines: dict[str, tuple[float, list[str]]] = {}
_lines_lock = threading.Lock()


def read_line(file: str | Path, line: int) -> str:
    """Line `line` (1-based) of `file`; the file is read once per process (and again if it
    changes), so a worker pays ~the file's size in memory and no re-read per episode."""
    key = os.path.realpath(file)
    mtime = os.stat(key).st_mtime
    with _lines_lock:
        cached = _lines.get(key)
        if cached is None or cached[0] != mtime:
            cached = _lines[key] = (mtime, Path(key).read_text(encoding="utf-8").splitlines())
    lines = cached[1]
    if not 1 <= line <= len(lines):
        raise BadRow(file, line, f"no such line (the file has {len(lines)})")
    return lines[line - 1]


def row_task_fields(file: str | Path, line: int) -> dict[str, Any]:
    """The τ² Task fields of line `line` of `file` (BadRow if it is malformed)."""
    try:
        return task_fields(parse_line(read_line(file, line)))
    except BadRow:
        raise
    except ValueError as e:
        raise BadRow(file, line, str(e)) from None
