"""Which τ² task set a number was measured on, and refusing to put numbers of different task
sets together. The task files carry no version: an evaluation names its domain's file by
content hash (metrics.json's `task_set`), and `published.yaml` gives the known hashes their
label and the releases they belong to. Evaluations stand together (one submission, one table
by step) when each domain was scored on one file and the domains' files share a release; an
unknown file stands only with unknown files (nothing says they differ)."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import yaml

from tau2train.records.eval_report import UNKNOWN_TASK_SET, EvalReport, TaskSet

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")
NOT_STATED = "task set not stated"


class MixedTaskSets(Exception):
    """Evaluations of different task sets were given to be merged: one message for the user."""


@lru_cache(maxsize=1)
def published() -> dict:
    return yaml.safe_load(PUBLISHED_FILE.read_text())


def _known(domain: str, tasks_sha256: str) -> dict:
    return published()["task_sets"].get(domain, {}).get(tasks_sha256, {})


def task_set_label(domain: str, tasks_sha256: str) -> str:
    return _known(domain, tasks_sha256).get("label", UNKNOWN_TASK_SET)


def releases(domain: str, task_set: TaskSet) -> frozenset[str]:
    """The releases whose task file for `domain` this is (empty: not a known file)."""
    return frozenset(_known(domain, task_set.tasks_sha256).get("releases", ()))


def reference_note(domains: list[str], ours: dict[str, TaskSet], theirs: dict[str, str] | None) -> str:
    """"" when a published row was measured on these evaluations' task sets, else its mark."""
    if not theirs:
        return f"[{NOT_STATED}]"
    other = [f"{d} {theirs.get(d, 'not stated')}" for d in domains if theirs.get(d) not in releases(d, ours[d])]
    return f"[another task set: {', '.join(other)}]" if other else ""


def check_one_task_set(found: list[tuple[Path, EvalReport]]) -> None:
    """MixedTaskSets unless every domain was scored on one task file and the domains' files
    share a release (or none is a known release)."""
    dirs: dict[tuple[str, TaskSet], list[str]] = defaultdict(list)
    for folder, report in found:
        dirs[(report.domain, report.task_set)].append(str(folder))
    by_domain: dict[str, list[TaskSet]] = defaultdict(list)
    for domain, task_set in dirs:
        by_domain[domain].append(task_set)
    split = sorted(d for d, sets in by_domain.items() if len(sets) > 1)
    if split:
        raise MixedTaskSets(_mixed(f"{split[0]} was scored on different task sets", dirs, split[:1]))
    known = {d: releases(d, sets[0]) for d, sets in by_domain.items()}
    if any(known.values()) and not frozenset.intersection(*known.values()):
        raise MixedTaskSets(_mixed("the domains were scored on task sets of different releases", dirs,
                                   sorted(by_domain)))


def _mixed(what: str, dirs: dict[tuple[str, TaskSet], list[str]], domains: list[str]) -> str:
    lines = [f"  {d}: {ts.describe()}: {', '.join(paths)}" for (d, ts), paths in dirs.items() if d in domains]
    return (f"{what}; numbers on different task sets do not merge:\n" + "\n".join(lines)
            + "\nevaluate them on one task set, or name only the evaluations of one")
