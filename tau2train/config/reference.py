"""The config reference, rendered from the schemas: every tau2train key with its type, default,
valid values (declared `choices` / `range`) and `help`. The `help` metadata is the one source of
what a field means; docs/config-reference.md is this module's output, and a test fails when
the file and the schemas disagree.

    tau2train-config-reference                      # the whole reference, to stdout
    tau2train-config-reference econfig slurm        # some sections
    tau2train-config-reference --write docs/config-reference.md
    tau2train-config-reference --write-index tau2train/config/keys.json

The same walk over the schemas writes the key index the command line checks typos against
before AReaL is imported (tau2train.config.key_index).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from areal.api.cli_args import PPOConfig as ArealPPOConfig
from hydra import compose as hydra_compose
from omegaconf import MISSING, DictConfig, OmegaConf

from tau2train.config.compose import CONFIG_NAME, hydra_context
from tau2train.config.key_index import NODE, Key, to_json
from tau2train.config.registry import GROUP_SCHEMAS
from tau2train.schemas import (
    CHOICES,
    HELP,
    INHERITED_RANGES,
    RANGE,
    ExperimentConfig,
    RunInfo,
)

REFERENCE_FILE = "docs/config-reference.md"
INDEX_PATH = "tau2train/config/keys.json"
# run defaults read from this machine (an environment variable, the user-simulator URL a running
# tau2train-user-sim recorded), shown as the config writes them
MACHINE_DEPENDENT = ("${oc.env:", "tau2train.user_sim_url")
# the kind of key each plain type makes (tau2train.config.key_index.Key.kind)
KINDS = {str: "str", int: "int", float: "float", bool: "bool", list: "list", tuple: "list", dict: "map"}
TOP_LEVEL = "top level"
# what a section's name ends in when its keys are those of a list's items
LIST_ITEM = "[]"
HEADER = """# tau2train config reference

Generated from the schemas' `help` metadata (`tau2train/schemas/`) by
`tau2train-config-reference --write docs/config-reference.md`; `tests/test_config_reference.py`
fails when this file is out of date. Set any key on the command line (`econfig.max_steps=30`);
values outside **valid** are refused before anything is written or submitted. **default** is
what a run with no overrides gets (`conf/config.yaml`'s groups: `model=qwen3_1_7b`,
`domain=airline`, `cluster=local`, ...), followed by the schema's own where a group sets
another; other choices set their own (`python -m tau2train.run <choices> --cfg job` prints
them). AReaL's own keys (`actor.*`, `gconfig.*`, `rollout.*`, ...) are documented in AReaL's
CLI reference; the ranges tau2train checks on some of them are listed at the end.
"""


def _areal_names() -> set[str]:
    return {f.name for f in dataclasses.fields(ArealPPOConfig)}


def sections() -> Iterator[tuple[str, type, list[dataclasses.Field]]]:
    """(key prefix, schema, fields) for the root's own fields and each nested schema of ours."""
    own = [f for f in dataclasses.fields(ExperimentConfig) if f.name not in _areal_names()]
    yield TOP_LEVEL, ExperimentConfig, [f for f in own if not _schema_of(f)]
    yield from _nested("", own, ExperimentConfig)


def _nested(prefix: str, fields: list[dataclasses.Field],
            owner: type) -> Iterator[tuple[str, type, list[dataclasses.Field]]]:
    for f in fields:
        schema = _schema_of(f)
        if schema:
            inner = list(dataclasses.fields(schema))
            yield prefix + f.name, schema, [g for g in inner if not _schema_of(g)]
            yield from _nested(f"{prefix}{f.name}.", inner, schema)
        item = _item_schema_of(owner, f)
        if item:  # a list of them (reward.terms): each item's keys, `<list>[]`
            yield f"{prefix}{f.name}{LIST_ITEM}", item, list(dataclasses.fields(item))


def _item_schema_of(owner: type, f: dataclasses.Field) -> type | None:
    """The schema of a list field's items, when they are one of ours."""
    hint = typing.get_type_hints(owner)[f.name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _schema_of(f: dataclasses.Field) -> type | None:
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        return f.default_factory
    return None


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value: Any = f.default_factory()
    elif f.default is dataclasses.MISSING:
        return "—"
    else:
        value = f.default
    return _shown(value)


def _shown(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value == MISSING:
        return "required"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return '`""`' if value == "" else f"`{value}`"


def _valid(f: dataclasses.Field) -> str:
    parts = []
    if CHOICES in f.metadata:
        parts.append(", ".join(f"`{c}`" for c in f.metadata[CHOICES]))
    if RANGE in f.metadata:
        parts.append(str(f.metadata[RANGE]))
    return "; ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_defaults() -> DictConfig:
    """The config a run with no overrides composes (conf/config.yaml's groups), unresolved."""
    with hydra_context():
        return hydra_compose(CONFIG_NAME, overrides=[])


def _run_default(run: DictConfig, key: str) -> str:
    """What a run with no overrides gets for `key`, resolved; a value read from this machine
    (MACHINE_DEPENDENT) as the config writes it."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(run, parent) if parent else run
    if OmegaConf.is_interpolation(node, leaf):
        raw = OmegaConf.to_container(node, resolve=False)[leaf]
        if any(marker in raw for marker in MACHINE_DEPENDENT):
            return f"`{raw}`"
    value = OmegaConf.select(run, key)
    return _shown(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value)


def _default_cell(f: dataclasses.Field, key: str, run: DictConfig) -> str:
    """A run's default, and the schema's when a config group sets another (a list item's:
    the schema's alone)."""
    if LIST_ITEM in key:
        return _default(f)
    schema, composed = _default(f), _run_default(run, key)
    return composed if composed == schema else f"{composed} (schema: {schema})"


def render_section(prefix: str, schema: type, fields: list[dataclasses.Field], run: DictConfig) -> str:
    title = f"`{prefix}`" if prefix != TOP_LEVEL else "Top level"
    doc = " ".join((schema.__doc__ or "").split())
    lines = [f"## {title} ({schema.__name__})", "", doc, "",
             "| key | type | default | valid | what it does |", "| --- | --- | --- | --- | --- |"]
    for f in fields:
        key = f.name if prefix == TOP_LEVEL else f"{prefix}.{f.name}"
        lines.append(
            f"| `{key}` | `{_cell(str(f.type))}` | {_cell(_default_cell(f, key, run))} | {_cell(_valid(f))} "
            f"| {_cell(f.metadata.get(HELP, ''))} |"
        )
    return "\n".join(lines)


def render_inherited() -> str:
    lines = ["## AReaL keys with a checked range", "",
             "AReaL's dataclasses declare `help` and `choices` (both checked too) but no ranges; "
             "tau2train checks these.", "", "| key | valid |", "| --- | --- |"]
    lines += [f"| `{key}` | {allowed} |" for key, allowed in INHERITED_RANGES.items()]
    return "\n".join(lines)


def render_run_info() -> str:
    lines = ["## Episode records (RunInfo)", "",
             "Not a config: what each episode's JSON under `<run_dir>/generated/` holds.", "",
             "| field | type | what it holds |", "| --- | --- | --- |"]
    lines += [f"| `{f.name}` | `{_cell(str(f.type))}` | {_cell(f.metadata.get(HELP, ''))} |"
              for f in dataclasses.fields(RunInfo)]
    return "\n".join(lines)


def section_names() -> list[str]:
    return [prefix for prefix, _, _ in sections()]


def render(only: list[str] | None = None) -> str:
    parts = [] if only else [HEADER]
    run = run_defaults()
    for prefix, schema, fields in sections():
        if not only or prefix in only:
            parts.append(render_section(prefix, schema, fields, run))
    if not only:
        parts += [render_inherited(), render_run_info()]
    return "\n\n".join(parts) + "\n"


def key_index() -> str:
    """The text of the key index: every key of the root schema, at any depth."""
    keys: dict[str, Key] = {}
    _index(ExperimentConfig, "", keys)
    return to_json(keys, sorted(GROUP_SCHEMAS))


def _index(schema: type, prefix: str, keys: dict[str, Key]) -> None:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = prefix + f.name
        kind, optional, inner = _kind(hints[f.name])
        choices = tuple(f.metadata[CHOICES]) if CHOICES in f.metadata else None
        keys[key] = Key(kind, optional, choices, INHERITED_RANGES.get(key, f.metadata.get(RANGE)))
        if inner is not None:
            _index(inner, key + ".", keys)


def _kind(hint: Any) -> tuple[str, bool, type | None]:
    """(kind, may be null, the nested schema of a node) of a field's type hint."""
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else Any
    if dataclasses.is_dataclass(hint):
        return NODE, optional, hint
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return "enum", optional, None
    return ("any" if hint is Any else KINDS.get(origin, "other")), optional, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tau2train-config-reference",
        description="Every tau2train config key: type, default, valid values and what it does.",
    )
    parser.add_argument("section", nargs="*", help=f"sections to show (default: all): {', '.join(section_names())}")
    parser.add_argument("--write", metavar="PATH", help=f"write the whole reference to PATH (e.g. {REFERENCE_FILE})")
    parser.add_argument("--write-index", metavar="PATH",
                        help=f"write the key index the command line's early checks read (e.g. {INDEX_PATH})")
    args = parser.parse_args(argv)
    unknown = [s for s in args.section if s not in section_names()]
    if unknown:
        print(f"error: no section {unknown[0]!r}\n  valid: {', '.join(section_names())}\n"
              f"  fix:   name one of those, or none for the whole reference", file=sys.stderr)
        return 2
    if args.write or args.write_index:
        for path, text in ((args.write, render), (args.write_index, key_index)):
            if path:
                Path(path).write_text(text())
                print(f"wrote {path}")
        return 0
    sys.stdout.write(render(args.section or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
