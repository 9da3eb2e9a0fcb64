"""The one error type a user sees for bad input, shaped so every message says the same four things."""

from __future__ import annotations

from collections.abc import Iterable

# Exit status for bad input (like argparse): nothing was written, launched or submitted.
BAD_INPUT_EXIT_CODE = 2


class ConfigError(Exception):
    """A config mistake: which key, which value, what would be valid, what to do."""

    def __init__(
        self,
        key: str,
        value: object,
        problem: str,
        valid: Iterable[object] | str | None = None,
        fix: str | None = None,
    ):
        self.key = key
        self.value = value
        self.problem = problem
        self.valid = valid if isinstance(valid, (str, type(None))) else ", ".join(map(str, valid))
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"error: {self.key}={self.value!r}: {self.problem}"]
        if self.valid:
            lines.append(f"  valid: {self.valid}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)
