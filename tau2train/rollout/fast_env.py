"""Cheap per-episode τ² environments: one shared pristine DB per process, copied on access.

Stock tau2 builds every Environment by parsing and validating the domain's packaged DB
(airline: ~0.35 s), and `evaluate_simulation` builds two more and hashes both whole DBs
(~0.09 s each). For RL that is ~1.3 s of CPU per episode spent re-creating the same data.

`install(domain)` makes `registry.get_env_constructor(domain)` hand out environments built by
the stock constructor itself, but over a copy-on-access view of a DB loaded once per process:

* Every dict in the DB whose values are mutable (the top-level tables, and nested ones such as
  a flight's `dates`) becomes a `CowDict`. Its slots start out pointing at the pristine
  objects; the first Python-level read of an entry (`d[k]`, `.get`, `.values()`, `.items()`,
  `.pop`, ...) replaces it by a private copy, so tools mutate only their own episode's records.
  Reading a pristine object without copying happens only in C code that does not hand it back
  (len/in, ==, pydantic serialization); pydantic validation of a dict subclass goes through
  `.items()`. So the pristine DB is never mutated and episodes never see each other's state.
* The DB hash is replaced (per environment) by `_Domain.digest`: a sha256 over the records
  that differ from the pristine DB, each fingerprinted with tau2's own `get_dict_hash` of the
  record as the DB's own `model_dump` serializes it. Since the pristine DB is fixed, two DBs
  get equal digests iff their full `model_dump`s serialize to equal JSON, i.e. iff the stock
  hashes are equal — which is all `evaluate_simulation` compares. The digest string is *not*
  the stock hash (it is tagged "fast_env:"), so only compare it with other fast environments
  of the same domain in the same process (tau2 itself never calls `check_db`).

A row's DB snapshot (AReaL-tau2-data) is a registered alias of its domain whose constructor
loads the snapshot (tau2train.rollout.snapshots); `install(alias, family=domain)` makes it
fast the same way, with the snapshot as the alias's own pristine DB: one per snapshot per
process, digests only ever compared between environments of the same alias.

Domains in `STOCK_ONLY` keep the stock constructor: telecom's tables are lists (nothing to
share per record), it has a user DB synced by its environment, and its stock constructor
already costs only a few milliseconds.

Reliance on tau2 internals, each reached through tau2train.compat.tau2 (a tau2 upgrade could
break these; `install` self-checks the first three and leaves the domain on the stock
constructor if they fail, and tests/test_fast_env.py and tests/test_compat.py check them):
  1. the stock constructor takes `db=` and wires that object into `env.tools.db`
     (`takes_db`, `environment_db`);
  2. `Environment.get_db_hash()` delegates to `env.tools.get_db_hash()` (`set_db_hash`:
     patched per instance, reading `env.tools.db` at call time, since `update_db` may
     replace it);
  3. `env.user_tools is None` for the fast domains (`has_user_tools`);
  4. `Registry` has no public way to replace a domain, so `install` writes
     `registry._domains[domain]` (`replace_domain`, the only place).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import functools
import inspect
import threading
import uuid
from collections.abc import Callable, ItemsView, ValuesView
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from tau2train.compat.tau2 import (
    DB_PARAMETER,
    data_dir,
    environment_db,
    has_user_tools,
    replace_domain,
    set_db_hash,
    takes_db,
)

# Domains whose environments install() makes fast (each checked by tests/test_fast_env.py).
FAST_DOMAINS = frozenset({"airline", "retail", "mock"})
# Domains install() leaves on the stock constructor, and why.
STOCK_ONLY = {
    "telecom": "list-based tables and a synced user DB; the stock constructor takes ~5 ms",
    "telecom-workflow": "same as telecom",
}
DIGEST_PREFIX = "fast_env:"

_MISSING = object()
_EMPTY: dict = {}
_ATOMIC = frozenset({str, int, float, bool, type(None), bytes, complex, decimal.Decimal,
                     datetime.date, datetime.datetime, datetime.time, datetime.timedelta, uuid.UUID})
_MODEL_COPY = BaseModel.__copy__
_lock = threading.Lock()
# (domain, tau2's data directory) -> its fast constructor (.__wrapped__: the stock one)
_built: dict[tuple[str, Path], Callable] = {}
_installed: dict[str, Callable] = {}  # domain -> the fast constructor the registry holds


def _atomic(value: Any) -> bool:
    """Immutable leaves: sharing them between episodes is the same as copying them."""
    return type(value) in _ATOMIC or isinstance(value, Enum)


def _fork(value: Any) -> Any:
    """A private copy of a pristine value, as deep as needed, with large dicts copied lazily."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        for item in value.values():
            if type(item) not in _ATOMIC and not isinstance(item, Enum):
                return CowDict._over(value)
        return value.copy()
    if kind is list:
        return [_fork(item) for item in value]
    if isinstance(value, BaseModel) and kind.__copy__ is _MODEL_COPY:
        # pydantic's shallow copy: new instance, copies of __dict__ (the field values),
        # __pydantic_fields_set__, __pydantic_extra__ and __pydantic_private__.
        model = value.__copy__()
        for slots in (model.__dict__, model.__pydantic_extra__, model.__pydantic_private__):
            if slots:
                for key, item in slots.items():
                    if type(item) not in _ATOMIC and not isinstance(item, Enum):
                        slots[key] = _fork(item)
        return model
    if isinstance(value, Enum):
        return value
    if kind is tuple:
        return tuple(_fork(item) for item in value)
    return copy.deepcopy(value)


class CowDict(dict):
    """A dict whose entries are shared with a pristine dict until first read from Python.

    Every method that can hand a value back to Python code is overridden to return the
    episode's private copy; `__iter__` is overridden only so that CPython's dict-merge fast
    path (dict(d), {**d}, x.update(d)) falls back to keys() + __getitem__.
    """

    _pristine: dict = _EMPTY  # instances made by dict machinery (fromkeys, ...) are plain dicts

    @classmethod
    def _over(cls, pristine: dict) -> CowDict:
        view = cls(pristine)
        view._pristine = pristine
        return view

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is self._pristine.get(key, _MISSING):
            value = _fork(value)
            dict.__setitem__(self, key, value)
        return value

    def __iter__(self):
        return dict.__iter__(self)

    def get(self, key, default=None):
        return self[key] if key in self else default  # noqa: SIM401 - self.get is this method

    def setdefault(self, key, default=None):
        if key in self:
            return self[key]
        dict.__setitem__(self, key, default)
        return default

    def pop(self, key, *default):
        if key in self:
            value = self[key]
            dict.__delitem__(self, key)
            return value
        return dict.pop(self, key, *default)  # the stock KeyError / default / TypeError

    def popitem(self):
        key, value = dict.popitem(self)
        if value is self._pristine.get(key, _MISSING):
            value = _fork(value)
        return key, value

    def values(self):
        return _Values(self)

    def items(self):
        return _Items(self)

    def copy(self) -> dict:
        return dict(self)  # plain dict sharing this episode's (now private) values, like dict.copy

    __copy__ = copy

    def __deepcopy__(self, memo):
        clone = type(self)()
        clone._pristine = self._pristine
        memo[id(self)] = clone
        for key, value in dict.items(self):  # untouched entries stay shared with the pristine dict
            shared = value is self._pristine.get(key, _MISSING)
            dict.__setitem__(clone, key, value if shared else copy.deepcopy(value, memo))
        return clone

    def __reduce_ex__(self, protocol):
        return (dict, (self.copy(),))  # pickles as the plain dict it stands for

    def __or__(self, other):
        return _merged(self, other) if isinstance(other, dict) else NotImplemented

    def __ror__(self, other):
        return _merged(other, self) if isinstance(other, dict) else NotImplemented


def _merged(first: dict, second: dict) -> dict:
    """`first | second` of a CowDict and a dict, either way round: a plain dict, as dict's own."""
    merged = dict(first)
    merged.update(second)
    return merged


def _private_items(mapping: CowDict):
    """(key, private value) pairs: = ((k, mapping[k]) for k in mapping), one lookup each."""
    pristine = mapping._pristine
    for key, value in dict.items(mapping):
        if value is pristine.get(key, _MISSING):
            value = _fork(value)
            dict.__setitem__(mapping, key, value)  # same key: iteration stays valid
        yield key, value


class _Values(ValuesView):
    __slots__ = ()

    def __iter__(self):
        return (value for _, value in _private_items(self._mapping))

    def __reversed__(self):
        return (self._mapping[key] for key in reversed(self._mapping))

    @property
    def mapping(self):
        return MappingProxyType(self._mapping)


class _Items(ItemsView):
    __slots__ = ()

    def __iter__(self):
        return _private_items(self._mapping)

    def __reversed__(self):
        return ((key, self._mapping[key]) for key in reversed(self._mapping))

    @property
    def mapping(self):
        return MappingProxyType(self._mapping)


def _same(value: Any, pristine: Any) -> bool:
    """True only if `value` provably serializes exactly like `pristine` (same objects all the
    way down, or equal str/int/bool/None leaves). False means "compare the serializations"."""
    if value is pristine:
        return True
    kind = type(value)
    if kind is not type(pristine):
        return kind is CowDict and type(pristine) is dict and _same_dict(value, pristine)
    if kind in (str, int, bool):
        return value == pristine
    if isinstance(value, BaseModel):
        return (_same_dict(value.__dict__, pristine.__dict__)
                and _same(value.__pydantic_extra__, pristine.__pydantic_extra__))
    if kind is dict:
        return _same_dict(value, pristine)
    if kind is list or kind is tuple:
        return len(value) == len(pristine) and all(map(_same, value, pristine))
    return False


def _same_dict(value: dict, pristine: dict) -> bool:
    if len(value) != len(pristine):
        return False
    for key, item in dict.items(value):  # raw slots: no forking while comparing
        twin = pristine.get(key, _MISSING)
        if item is not twin and not _same(item, twin):
            return False
    return True


def _tree_problem(root: Any) -> str | None:
    """Why forking might not equal a deep copy of `root` (a shared object, a type _fork does not
    know), or None. Forking copies each reachable object separately, so it needs a tree."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        value = stack.pop()
        if _atomic(value):
            continue
        if id(value) in seen:
            return f"a {type(value).__name__} is shared between records"
        seen.add(id(value))
        if isinstance(value, BaseModel):
            if type(value).__copy__ is not _MODEL_COPY:
                return f"{type(value).__name__} overrides __copy__"
            stack.extend(value.__dict__.values())
            stack.extend((value.__pydantic_extra__ or _EMPTY).values())
            stack.extend((value.__pydantic_private__ or _EMPTY).values())
        elif type(value) is dict:
            stack.extend(value.values())
        elif type(value) in (list, tuple):
            stack.extend(value)
        else:
            return f"unsupported value type {type(value).__name__}"
    return None


class _Domain:
    """Per-process, read-only state of one domain: the pristine DB and its record fingerprints."""

    def __init__(self, pristine: BaseModel):
        self.pristine = pristine
        self.db_type = type(pristine)
        self.fields = tuple(sorted(self.db_type.model_fields))
        self.tables = frozenset(f for f in self.fields if type(pristine.__dict__[f]) is dict)
        self._fingerprints: dict[tuple[str, str], str] = {}  # filled lazily; GIL-atomic writes

    def __deepcopy__(self, memo):
        return self  # shared and never mutated: deep-copying an environment must not copy it

    def check(self) -> str | None:
        """Why this DB cannot be served copy-on-access, or None if it can."""
        pristine, db_type = self.pristine, self.db_type
        decorators = getattr(db_type, "__pydantic_decorators__", None)
        if set(pristine.__dict__) != set(self.fields) or pristine.__pydantic_extra__:
            return "the DB has values outside its declared fields"
        if db_type.model_computed_fields or decorators is None or (
            decorators.model_serializers or decorators.field_serializers
        ):
            return "the DB's serialization is customised"
        if not self.tables:
            return "the DB has no dict tables"
        if any(type(k) is not str for f in self.tables for k in pristine.__dict__[f]):
            return "a table has non-str keys"
        return _tree_problem(pristine)

    def fork(self) -> BaseModel:
        return _fork(self.pristine)

    def fingerprints(self, table: str, keys: list[str]) -> dict[str, str]:
        """tau2's get_dict_hash of each pristine record, as the DB's model_dump serializes it."""
        from tau2.utils import get_dict_hash

        cache = self._fingerprints
        missing = [k for k in keys if (table, k) not in cache]
        if missing:
            records = self.pristine.model_dump(include={table: dict.fromkeys(missing, True)})[table]
            for key in missing:
                cache[(table, key)] = get_dict_hash(records[key])
        return {k: cache[(table, k)] for k in keys}

    def digest(self, db: BaseModel) -> str:
        """Equal for two DBs iff their stock hashes (sha256 of the JSON model_dump) are equal.

        Only table entries that are not provably untouched get serialized; each one that
        serializes differently from the pristine record (or is new) enters the digest with
        its fingerprint, each deleted key with None, and non-table fields in full.
        """
        from tau2.utils import get_dict_hash

        candidates: dict[str, tuple[Any, list]] = {}  # table -> (its keys, keys to serialize)
        if type(db) is self.db_type:
            include: dict[str, Any] = {}
            for name in self.fields:
                value = db.__dict__[name]
                if name in self.tables and isinstance(value, dict):
                    pristine = self.pristine.__dict__[name]
                    changed = [k for k, v in dict.items(value) if not _same(v, pristine.get(k, _MISSING))]
                    candidates[name] = (dict.keys(value), changed)
                    if changed:
                        include[name] = dict.fromkeys(changed, True)
                else:
                    include[name] = True
            dumped = db.model_dump(include=include) if include else {}
            names: Any = self.fields
        else:  # not expected (tools replaced the DB by another type): exact, as slow as stock
            dumped = db.model_dump()
            for name, value in dumped.items():
                if name in self.tables and isinstance(value, dict):
                    candidates[name] = (value.keys(), list(value))
            names = sorted(dumped)
        tables, fields = {}, {}
        for name in names:
            if name not in candidates:
                fields[name] = dumped[name]
                continue
            keys, changed = candidates[name]
            pristine = self.pristine.__dict__[name]
            diff = dict.fromkeys(pristine.keys() - keys)  # deleted records
            if any(type(k) is not str for k in changed):
                raise TypeError(f"fast_env: table {name!r} got a non-str key; its JSON is ambiguous")
            known = self.fingerprints(name, [k for k in changed if k in pristine])
            for key in changed:
                mark = get_dict_hash(dumped[name][key])
                if mark != known.get(key):
                    diff[key] = mark
            tables[name] = diff
        return DIGEST_PREFIX + get_dict_hash({"tables": tables, "fields": fields})


def _make_fast(name: str, stock: Callable) -> Callable | None:
    """The fast constructor for `name`, or None (with the reason logged) if it is unsafe."""
    from loguru import logger

    if not takes_db(stock):
        logger.warning(f"fast_env: {name}: stock constructor takes no db=; keeping it")
        return None
    signature = inspect.signature(stock)
    probe = stock()
    if has_user_tools(probe) or not isinstance(environment_db(probe), BaseModel):
        logger.warning(f"fast_env: {name}: environment layout not as expected; keeping stock")
        return None
    domain = _Domain(environment_db(probe))
    reason = domain.check()
    if reason:
        logger.warning(f"fast_env: {name}: {reason}; keeping stock")
        return None

    @functools.wraps(stock)  # same name, docs and inspect.signature as the stock constructor
    def fast(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return stock(*args, **kwargs)  # let the stock constructor raise its own error
        if bound.arguments.get(DB_PARAMETER) is not None:
            return stock(*args, **kwargs)  # the caller's own DB: nothing to share
        db = domain.fork()
        bound.arguments[DB_PARAMETER] = db
        env = stock(*bound.args, **bound.kwargs)
        if environment_db(env) is not db:  # internals (1): the DB we pass is the one the tools use
            raise RuntimeError(f"fast_env: {name}: stock constructor did not use the given db")
        set_db_hash(env, domain.digest)  # internals (2)
        return env

    try:  # self-check of internals (1)-(3) on a real environment
        env = fast()
    except RuntimeError as error:
        logger.warning(f"{error}; keeping stock")
        return None
    if has_user_tools(env) or not str(env.get_db_hash()).startswith(DIGEST_PREFIX):
        logger.warning(f"fast_env: {name}: Environment.get_db_hash bypasses tools; keeping stock")
        return None
    fast.fast_env_domain = domain  # marks it as ours (idempotence) and exposes state to tests
    return fast


def install(domain: str, family: str | None = None) -> None:
    """Make tau2's registry build `domain`'s environments copy-on-access (see module docs).

    `domain` may be a registered alias of a τ² domain on another DB (a row's snapshot,
    tau2train.rollout.snapshots): `family` names the τ² domain whose rules apply, and the
    shared read-only DB is the one the alias's constructor builds (one per alias).

    Idempotent and thread-safe. Does nothing for domains in STOCK_ONLY, domains not in
    FAST_DOMAINS, or domains whose stock layout fails the self-checks (logged). Unknown
    domains raise the registry's KeyError. The first call per domain loads its DB (~0.4 s).
    """
    from tau2.registry import registry

    with _lock:
        current = registry.get_env_constructor(domain)
        if (domain in _installed or (family or domain) not in FAST_DOMAINS
                or hasattr(current, "fast_env_domain")):
            return
        key = (domain, data_dir())  # a DB loaded from another data directory is not this one
        if key not in _built or _built[key].__wrapped__ is not current:
            fast = _make_fast(domain, current)
            if fast is None:
                return
            _built[key] = fast
        _installed[domain] = _built[key]
        replace_domain(domain, _built[key])


def uninstall(domain: str) -> None:
    """Put the stock constructor back (for benchmarks and tests). No-op if not installed."""
    with _lock:
        if domain in _installed:
            replace_domain(domain, _installed.pop(domain).__wrapped__)


def forget() -> None:
    """Put every stock constructor back: the process now reads another data directory
    (tau2train.rollout.tau2_data_dir), whose DBs the next install loads (those built from a data
    directory are kept for a return to it)."""
    with _lock:
        for domain, fast in _installed.items():
            replace_domain(domain, fast.__wrapped__)
        _installed.clear()


def installed() -> frozenset[str]:
    """The domains whose environments are fast now."""
    with _lock:
        return frozenset(_installed)
