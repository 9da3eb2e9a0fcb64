"""Every key of the composed config, its type and its declared choices and range, as an index
read without AReaL: a typo on the command line (an unknown key, a value outside a declared
choice or range) is answered in about a second, before AReaL (about 20 s to import) is loaded.

The index (`keys.json`, beside this module) is generated from the real schemas by
`tau2train-config-reference --write-index`; tests/test_key_index.py fails when it and the
schemas disagree, and checks that these early answers are the ones composition gives.
Whatever the index cannot judge (free-form mappings, lists, interpolations, sweeps, types) is
left to composition and validation, which check everything again.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
from typing import Any

from hydra.core.override_parser.types import Override

from tau2train.config.errors import ConfigError
from tau2train.config.overrides import GROUPS, did_you_mean, hydras_own
from tau2train.schemas.declare import Range

INDEX_FILE = "keys.json"
# A key whose schema nests a dataclass: its children are keys too.
NODE = "node"
# Python values an override may carry for a key of each plain type; `bool` is an int to Python,
# not to OmegaConf, so it is excluded by name.
CONVERT = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of the schemas: its type's kind (str, int, float, bool, node, list, map, enum,
    any, other), whether it may be null, and what its field declares."""

    kind: str
    optional: bool = False
    choices: tuple | None = None
    range: Range | None = None


@dataclasses.dataclass(frozen=True)
class KeyIndex:
    keys: dict[str, Key]
    schema_groups: tuple[str, ...]

    def children(self, parent: str) -> list[str]:
        prefix = f"{parent}." if parent else ""
        return sorted({k[len(prefix):].split(".")[0] for k in self.keys if k.startswith(prefix) and k != parent})


@functools.cache
def load() -> KeyIndex:
    data = json.loads((importlib.resources.files(__package__) / INDEX_FILE).read_text())
    keys = {
        name: Key(entry["kind"], entry.get("optional", False),
                  tuple(entry["choices"]) if "choices" in entry else None,
                  Range(**entry["range"]) if "range" in entry else None)
        for name, entry in data["keys"].items()
    }
    return KeyIndex(keys, tuple(data["schema_groups"]))


def to_json(keys: dict[str, Key], schema_groups: list[str]) -> str:
    """The index file's text (what load() reads back): one key a line, in the schemas' order."""
    def entry(key: Key) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": key.kind}
        if key.optional:
            out["optional"] = True
        if key.choices is not None:
            out["choices"] = list(key.choices)
        if key.range is not None:
            out["range"] = dataclasses.asdict(key.range)
        return out

    lines = [f" {json.dumps(k)}: {json.dumps(entry(v), ensure_ascii=False)}" for k, v in keys.items()]
    return f'{{"schema_groups": {json.dumps(schema_groups)},\n"keys": {{\n' + ",\n".join(lines) + "\n}}\n"


def check(overrides: list[Override]) -> None:
    """Refuse the first override that names a key the schemas lack, then the first whose value
    lies outside its key's declared choices or range; leave the rest to composition."""
    index = load()
    judged = [o for o in overrides if _judged(o)]
    for override in judged:
        _check_key(index, override)
    for override in judged:
        key = index.keys.get(override.key_or_group)
        value = _plain_value(key, override) if key else None
        refusal = declared_refusal(override.key_or_group, value, key.choices, key.range) if value is not None else None
        if refusal:
            raise refusal


def declared_refusal(key: str, value: Any, choices: Any, allowed: Range | None) -> ConfigError | None:
    """The error for a value outside its key's declared `choices` or `range`, or None."""
    if choices is not None and value not in choices:
        return ConfigError(
            key, value, "not one of the choices",
            valid=", ".join(str(c) for c in choices if c is not None),
            fix=f"set {key} to one of those",
        )
    if allowed is not None and value not in allowed:
        return ConfigError(
            key, value, allowed.requirement(),
            valid=str(allowed),
            fix=f"change {key}: it {allowed.requirement()}",
        )
    return None


def _judged(override: Override) -> bool:
    """Overrides of a key (not a group choice, a deletion, Hydra's own or a sweep)."""
    return not (override.key_or_group in GROUPS or hydras_own(override)
                or override.is_delete() or override.is_sweep_override())


def _check_key(index: KeyIndex, override: Override) -> None:
    """Walk the key from the top: every part must be a field of the schema above it, as long as
    that schema is a dataclass (below a mapping, a list or Any, anything may be)."""
    parts = override.key_or_group.split(".")
    for depth, part in enumerate(parts):
        parent = ".".join(parts[:depth])
        if parent and index.keys[parent].kind != NODE:
            return
        if ".".join(parts[: depth + 1]) not in index.keys:
            valid = index.children(parent)
            where = f"'{parent}'" if parent else "the top level"
            raise ConfigError(
                override.key_or_group, override.value(), f"unknown key: {where} has no '{part}'",
                valid=valid,
                fix=did_you_mean(part, valid) + "list every key with `python -m tau2train.run --cfg job`",
            )


def _plain_value(key: Key, override: Override) -> Any:
    """The value as the composed config would hold it, when that is certain: a plain value of
    the key's own type (an int for a float key becomes a float, as OmegaConf makes it)."""
    if override.is_add() or key.kind not in CONVERT:
        return None
    value = override.value()
    if isinstance(value, bool) != (key.kind == "bool") or not isinstance(value, CONVERT[key.kind]):
        return None
    if isinstance(value, str) and "${" in value:
        return None
    return float(value) if key.kind == "float" else value
