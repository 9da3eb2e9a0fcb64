"""What a schema field declares beyond its type, read by validation and by the config reference.

A field's `metadata` holds its `help` (one sentence: what it does), optionally `choices`
(the values it may take) and `range` (a `Range`: the interval a number must fall in). AReaL's
own fields declare `help` and `choices` the same way; validation checks every declared
choice and range of the composed config in one place (tau2train.config.declared).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

HELP = "help"
CHOICES = "choices"
RANGE = "range"


@dataclass(frozen=True)
class Range:
    """A closed or half-open numeric interval; None leaves that side unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def requirement(self) -> str:
        """What a value must be, as a message says it."""
        if self.low is not None and self.high is None:
            return f"must be {'greater than' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None and self.low is None:
            return f"must be {'less than' if self.high_open else 'at most'} {self.high:g}"
        return f"must lie in {self}"

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return (("(" if self.low_open else "[") + f"{self.low:g}, {self.high:g}"
                    + (")" if self.high_open else "]"))
        if self.low is not None:
            return (">" if self.low_open else ">=") + f" {self.low:g}"
        if self.high is not None:
            return ("<" if self.high_open else "<=") + f" {self.high:g}"
        return "any number"


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    choices: Sequence[Any] | None = None,
    range: Range | None = None,
) -> Any:
    """A schema field: its default (or the `factory` making one per instance: a list, a dict, a
    group's schema) and what it declares, its `help` and the optional `choices` and `range`."""
    metadata: dict[str, Any] = {HELP: help}
    if choices is not None:
        metadata[CHOICES] = choices
    if range is not None:
        metadata[RANGE] = range
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# The ranges most knobs share.
AT_LEAST_ONE = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)
# Sampling temperature, as OpenAI-compatible servers accept it.
TEMPERATURE = Range(0, 2)
PORT = Range(1, 65535)
