"""Every `choices` and `range` a schema field declares, checked over the composed config in one
place: tau2train's own fields (their metadata), AReaL's (their `choices` metadata, plus the
ranges tau2train declares for them in INHERITED_RANGES), at any depth, list items included.
OmegaConf checks types but not these, so `slurm.container_type=docker` would otherwise pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from enum import Enum
from typing import Any

from tau2train.config.key_index import declared_refusal
from tau2train.schemas import CHOICES, INHERITED_RANGES, RANGE, ExperimentConfig


def declared_fields(exp: ExperimentConfig) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(dotted key, value, declarations) for every field of the composed config, the most
    derived schema's fields first (the groups' facts, then econfig & co., then AReaL's): a
    value interpolated from another key (domain.max_steps into econfig.max_steps, econfig's
    into AReaL's rollout.agent) is reported under the key it comes from, the one users set."""
    levels = [c for c in type(exp).__mro__ if dataclasses.is_dataclass(c)]
    ordered = []
    for cls, base in zip(levels, [*levels[1:], None]):
        inherited = {f.name for f in dataclasses.fields(base)} if base else set()
        ordered += [f for f in dataclasses.fields(cls) if f.name not in inherited]
    yield from _walk(exp, ordered, "")


def _walk(node: Any, fields: list[dataclasses.Field], prefix: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    for f in fields:
        key, value = prefix + f.name, getattr(node, f.name)
        declarations = dict(f.metadata)
        if key in INHERITED_RANGES:
            declarations[RANGE] = INHERITED_RANGES[key]
        yield key, value, declarations
        items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in items:
            if dataclasses.is_dataclass(item) and not isinstance(item, type):
                inner = key if index is None else f"{key}.{index}"
                yield from _walk(item, list(dataclasses.fields(item)), inner + ".")


def check_declared(exp: ExperimentConfig) -> None:
    """Raise a ConfigError for the first value outside its field's declared choices or range."""
    for key, value, declarations in declared_fields(exp):
        value = value.value if isinstance(value, Enum) else value
        if value is None:  # unset; whether it may be is the type's business
            continue
        refusal = declared_refusal(key, value, declarations.get(CHOICES), declarations.get(RANGE))
        if refusal:
            raise refusal
