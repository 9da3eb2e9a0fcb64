"""A small AReaL-tau2-data folder in the exact released layout, made from τ²'s own tasks and DBs
(the real dataset cannot be downloaded here):

    <root>/tau2_rl_train.jsonl          a dozen rows: airline, retail, telecom, in file order
    <root>/tau2_rl_database/            three snapshots:
        tau2_airline_new_db_1.json      τ²'s airline DB with reservation NQNU5R re-keyed to SNAP9R
        tau2_retail_new_db_1.json       τ²'s retail DB
        tau2_telecom_new_db_1.toml      τ²'s telecom DB

Each row is a Task as tau2 dumps it, `evaluation_criteria` as a JSON *string*, plus `db_path`.
One airline row (SNAPSHOT_TASK_ID) is τ²'s airline task 9 with its reservation renamed to
SNAP9R: its gold actions (cancel SNAP9R) succeed on the altered snapshot only. Task ids repeat
(airline task 1 twice), as in the released file.

The scripted LLM server knows τ²'s own tasks; `scripts_with_rows(root)` adds the rows' tasks
so that it can play the altered one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loguru import logger

logger.disable("tau2")
from tau2.data_model.tasks import Task  # noqa: E402
from tau2.domains.airline.data_model import FlightDB  # noqa: E402
from tau2.domains.airline.utils import AIRLINE_DB_PATH  # noqa: E402
from tau2.domains.retail.utils import RETAIL_DB_PATH  # noqa: E402
from tau2.domains.telecom.utils import TELECOM_DB_PATH  # noqa: E402
from tau2.registry import registry  # noqa: E402

from tau2train.records.areal_tau2 import DB_DIR, RL_FILE  # noqa: E402

SNAPSHOTS = {
    "airline": "tau2_airline_new_db_1.json",
    "retail": "tau2_retail_new_db_1.json",
    "telecom": "tau2_telecom_new_db_1.toml",
}
# (domain, τ² split, task id) of each row, in file order
ROWS = [
    ("airline", "train", "1"), ("airline", "train", "7"), ("airline", "train", "1"),
    ("airline", "train", "14"), ("retail", "train", "0"), ("retail", "train", "2"),
    ("retail", "test", "9"), ("telecom", "train", None), ("telecom", "train", None),
    ("telecom", "test", None),
]
# the altered task: τ² airline task 9, its reservation renamed, on the altered snapshot
ORIGINAL_RESERVATION, SNAPSHOT_RESERVATION = "NQNU5R", "SNAP9R"
SNAPSHOT_TASK_ID = "9-snapshot"
SNAPSHOT_LINE = len(ROWS) + 1  # the altered task's line (1-based)
N_ROWS = len(ROWS) + 2  # + the altered task + a retail row after it


def tau2_task(domain: str, split: str, task_id: str | None) -> Task:
    tasks = registry.get_tasks_loader(domain)(split)
    return tasks[0] if task_id is None else next(t for t in tasks if t.id == task_id)


def snapshot_task() -> Task:
    """τ²'s airline task 9 with reservation NQNU5R renamed SNAP9R (and its scenario marked)."""
    text = tau2_task("airline", "train", "9").model_dump_json(exclude_none=True)
    task = json.loads(text.replace(ORIGINAL_RESERVATION, SNAPSHOT_RESERVATION))
    task["id"] = SNAPSHOT_TASK_ID
    task["user_scenario"]["instructions"]["task_instructions"] += " (You booked it on the new system.)"
    return Task.model_validate(task)


def released_row(task: Task, domain: str) -> str:
    """One line as released: the Task, evaluation_criteria as a JSON string, db_path."""
    row = task.model_dump(mode="json", exclude_none=True)
    row["evaluation_criteria"] = json.dumps(row["evaluation_criteria"])
    row["db_path"] = f"{DB_DIR}/{SNAPSHOTS[domain]}"
    return json.dumps(row)


def altered_airline_db() -> str:
    db = FlightDB.load(AIRLINE_DB_PATH)
    reservation = db.reservations.pop(ORIGINAL_RESERVATION)
    reservation.reservation_id = SNAPSHOT_RESERVATION
    db.reservations[SNAPSHOT_RESERVATION] = reservation
    user = db.users[reservation.user_id]
    user.reservations = [SNAPSHOT_RESERVATION if r == ORIGINAL_RESERVATION else r for r in user.reservations]
    return db.model_dump_json()


def write_dataset(root: Path) -> Path:
    """Write the folder (see the module's docs) under `root`; returns `root`."""
    databases = root / DB_DIR
    databases.mkdir(parents=True, exist_ok=True)
    (databases / SNAPSHOTS["airline"]).write_text(altered_airline_db())
    shutil.copyfile(RETAIL_DB_PATH, databases / SNAPSHOTS["retail"])
    shutil.copyfile(TELECOM_DB_PATH, databases / SNAPSHOTS["telecom"])
    lines = [released_row(tau2_task(*row), row[0]) for row in ROWS]
    lines.append(released_row(snapshot_task(), "airline"))
    lines.append(released_row(tau2_task("retail", "train", "3"), "retail"))
    assert len(lines) == N_ROWS
    (root / RL_FILE).write_text("\n".join(lines) + "\n")
    return root


def replace_line(root: Path, line: int, text: str) -> None:
    """Put `text` on line `line` (1-based) of the RL file."""
    path = root / RL_FILE
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def scripts_with_rows(root: Path):
    """The scripted server's scripts, knowing the rows' tasks too (the altered one included)."""
    from helpers.scripted_llm import Scripts

    scripts = Scripts()
    for text in (root / RL_FILE).read_text().splitlines():
        row = json.loads(text)
        row["evaluation_criteria"] = json.loads(row["evaluation_criteria"])
        row.pop("db_path")
        task = Task.model_validate(row)
        domain = task.user_scenario.instructions.domain
        scripts.by_id[(domain, task.id)] = task
        scripts.by_scenario[str(task.user_scenario).strip()] = (domain, task)
    return scripts
