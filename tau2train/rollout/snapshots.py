"""Episodes on a row's own DB snapshot (AReaL-tau2-data), through tau2's public registry.

tau2's evaluator rebuilds environments by domain name (`evaluate_simulation(domain=...)` calls
`registry.get_env_constructor(domain)` for both the replay of the episode and the gold
replay). So each snapshot becomes one registered domain alias, `<domain>@<snapshot path>`,
whose constructor is the domain's stock one given `db=<the snapshot, loaded by the DB class's
own load>`: the episode's environment, the evaluator's replay and its gold replay all start
from the snapshot, and nothing else about the domain changes (policy, tools, user tools).

With `econfig.fast_env`, the alias is made fast exactly as a domain is (tau2train.rollout.
fast_env.install): one read-only copy of the snapshot per process, records copied on access,
for domains fast_env serves; telecom stays on the stock constructor (see fast_env.STOCK_ONLY).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import typing
from collections.abc import Callable

from pydantic import BaseModel

from tau2train.compat.tau2 import remove_domain
from tau2train.rollout import fast_env

SEPARATOR = "@"
_lock = threading.Lock()
_registered: dict[tuple[str, str], str] = {}  # (domain, db_path as rows name it) -> alias


def alias(domain: str, db_path: str) -> str:
    """The registry name of `domain` on the snapshot at `db_path`."""
    return f"{domain}{SEPARATOR}{os.path.realpath(db_path)}"


def base_domain(name: str) -> str:
    """The τ² domain of a registry name, snapshot alias or not."""
    return name.split(SEPARATOR, 1)[0]


def db_class(domain: str) -> type[BaseModel]:
    """The DB model a domain's stock constructor takes as `db=` (from its signature; else the
    type of a stock environment's DB)."""
    stock = stock_constructor(domain)
    annotation = inspect.signature(stock).parameters["db"].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return type(stock().tools.db)


def stock_constructor(domain: str) -> Callable:
    """tau2's own constructor of `domain`, also after fast_env.install(domain)."""
    from tau2.registry import registry

    constructor = registry.get_env_constructor(domain)
    return getattr(constructor, "__wrapped__", constructor) if hasattr(constructor, "fast_env_domain") else constructor


def _snapshot_constructor(domain: str, db_path: str) -> Callable:
    stock, model = stock_constructor(domain), db_class(domain)
    signature = inspect.signature(stock)

    @functools.wraps(stock)  # the stock constructor's signature: fast_env binds db= by it
    def get_environment(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if bound.arguments.get("db") is None:  # tau2's own loader, as for its packaged DB
            bound.arguments["db"] = model.load(db_path)
        return stock(*bound.args, **bound.kwargs)

    get_environment.__signature__ = signature
    get_environment.snapshot = db_path
    return get_environment


def environment(domain: str, db_path: str, fast: bool) -> str:
    """Register (once per process) the alias of `domain` on the snapshot `db_path` and return
    its name; with `fast`, its environments share one read-only copy of the snapshot."""
    from tau2.registry import registry

    name = _registered.get((domain, db_path))
    if name is None:
        with _lock:
            name = alias(domain, db_path)
            if name not in registry.get_domains():
                registry.register_domain(_snapshot_constructor(domain, os.path.realpath(db_path)), name)
            _registered[(domain, db_path)] = name
    if fast:
        fast_env.install(name, family=domain)
    return name


def registered() -> frozenset[str]:
    """The snapshot aliases this process has registered in tau2's registry."""
    with _lock:
        return frozenset(_registered.values())


def unregister(names: frozenset[str]) -> None:
    """Take these aliases out of tau2's registry again (a run's way out; their fast
    environments uninstalled first; tau2 has no public unregister: tau2train.compat.tau2)."""
    with _lock:
        for key, name in list(_registered.items()):
            if name in names:
                remove_domain(name)
                del _registered[key]
