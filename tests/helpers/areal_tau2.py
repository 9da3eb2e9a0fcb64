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

import functools
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


@functools.cache
def tau2_tasks(domain: str, split: str) -> tuple[Task, ...]:
    """A split's tasks, loaded once per process (telecom's loader validates 2,285 of them)."""
    return tuple(registry.get_tasks_loader(domain)(split))


def tau2_task(domain: str, split: str, task_id: str | None) -> Task:
    tasks = tau2_tasks(domain, split)
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


@functools.cache
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
    write_sft(root)
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


# ---- the SFT file (tau2_sft_train.jsonl) --------------------------------------------------
# One line per assistant turn, as the dataset card documents it: `messages` (the dialog before
# the turn; the system message holds the policy and the tools), `answer` (content, thinking,
# tool_calls), `metadata` (per-domain dialog id, correct, reward). Airline and retail rows list
# the tools in their system prompt (as released); telecom rows do not, so tau2train offers
# tau2's tools through the chat template there. Tool calls come in both released shapes.

@functools.cache
def system_prompt(domain: str, with_tools: bool) -> str:
    """The agent's system prompt of `domain`: its τ² policy, and its tools as JSON schemas."""
    from tau2train.rollout.players import agent_tool_schemas

    policy = registry.get_env_constructor(domain)().get_policy()
    text = f"You are a customer service agent.\n<policy>\n{policy}\n</policy>"
    if with_tools:
        text += "\n\n# Tools\n<tools>\n" + "\n".join(json.dumps(t) for t in agent_tool_schemas(domain)) + "\n</tools>"
    return text


def openai_call(name: str, arguments: dict, call_id: str) -> dict:
    """A tool call in OpenAI's shape: arguments a JSON *string*."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def plain_call(name: str, arguments: dict) -> dict:
    """A tool call in the other released shape: {name, arguments: {...}}."""
    return {"name": name, "arguments": arguments}


def sft_row(domain: str, dialog: int, turn: int, history: list[dict], answer: dict, correct: int) -> str:
    metadata = {
        "source_dialog_id": f"{domain}_dialog_{dialog}", "turn_index": turn, "reason_for_call": "a request",
        "scenario_id": f"scenario_{dialog}", "correct": correct, "reward": float(correct),
    }
    system = {"role": "system", "content": system_prompt(domain, with_tools=domain != "telecom")}
    return json.dumps({"messages": [system, *history], "answer": {"role": "assistant", **answer}, "metadata": metadata})


GREETING = {"role": "assistant", "content": "Hi! How can I help you today?"}
AIRLINE_USER = {"role": "user", "content": "Hi, I want to check my reservations. My user id is mia_li_3668."}
AIRLINE_ARGS = {"user_id": "mia_li_3668"}
AIRLINE_THINKING = "The user gave their id; I should look up their details first."
# (domain, correct) of each SFT line, in file order
SFT_LINES = [
    ("airline", 1), ("airline", 0), ("airline", 1), ("retail", 1), ("retail", 0),
    ("telecom", 1), ("telecom", 1), ("telecom", 0),
]
# lines (1-based) whose answers are the same call in the two shapes, after the same dialog
SAME_CALL_LINES = (1, 3)


def sft_lines() -> list[str]:
    retail_user = {"role": "user", "content": "I need to return an item. My email is yusuf.rossi@example.com."}
    telecom_user = {"role": "user", "content": "My phone has no service. My number is 555-123-2002."}
    tool_result = {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"user_id": "yusuf_rossi_9620"})}
    return [
        # airline, correct: thinking + an OpenAI-shape call
        sft_row("airline", 1, 2, [GREETING, AIRLINE_USER],
                {"content": "", "thinking": AIRLINE_THINKING,
                 "tool_calls": [openai_call("get_user_details", AIRLINE_ARGS, "call_a1")]}, 1),
        # airline, failed dialog: plain text
        sft_row("airline", 2, 2, [GREETING, AIRLINE_USER],
                {"content": "Sorry, I cannot help with that.", "thinking": "", "tool_calls": []}, 0),
        # airline, correct: the same call as line 1 in the {name, arguments} shape
        sft_row("airline", 3, 2, [GREETING, AIRLINE_USER],
                {"content": "", "thinking": AIRLINE_THINKING,
                 "tool_calls": [plain_call("get_user_details", AIRLINE_ARGS)]}, 1),
        # retail, correct: after a tool round (earlier thinking as `reasoning`), a text answer
        sft_row("retail", 4, 4, [
            GREETING, retail_user,
            {"role": "assistant", "content": "", "reasoning": "Look the user up by email.",
             "tool_calls": [openai_call("find_user_id_by_email", {"email": "yusuf.rossi@example.com"}, "call_1")]},
            tool_result,
        ], {"content": "Thanks, I found your account. Which order is it?", "thinking": "Found the user.",
            "tool_calls": []}, 1),
        # retail, failed dialog
        sft_row("retail", 5, 2, [GREETING, retail_user],
                {"content": "", "thinking": "Guessing the order.",
                 "tool_calls": [plain_call("get_order_details", {"order_id": "#W0000000"})]}, 0),
        # telecom (no tools in its system prompt), correct: a plain-shape call
        sft_row("telecom", 6, 2, [GREETING, telecom_user],
                {"content": "Let me look up your line.", "thinking": "Find the customer by phone.",
                 "tool_calls": [plain_call("get_customer_by_phone", {"phone_number": "555-123-2002"})]}, 1),
        # telecom, correct: text only, no thinking
        sft_row("telecom", 7, 2, [GREETING, telecom_user],
                {"content": "Could you restart your phone first?", "tool_calls": []}, 1),
        # telecom, failed dialog
        sft_row("telecom", 8, 2, [GREETING, telecom_user],
                {"content": "Your line is fine.", "thinking": "", "tool_calls": []}, 0),
    ]


def write_sft(root: Path) -> Path:
    """Write tau2_sft_train.jsonl (SFT_LINES, in order) under `root`; returns the file."""
    from tau2train.records.areal_sft import SFT_FILE

    root.mkdir(parents=True, exist_ok=True)
    lines = sft_lines()
    assert len(lines) == len(SFT_LINES)
    path = root / SFT_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
