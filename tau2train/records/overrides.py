"""A command-line override as written and as job records keep it (`key=value`, `+key=value`,
`++key=value`, `~key`, `group=choice`, `hydra/sweeper=optuna`): the key it sets and its value as
typed. The one reading of an override string that does not need Hydra: the reports (which may
not load Hydra) read job records' overrides with it, and the launch and config layers use it
on raw command lines (flags included) before Hydra's own parser
(tau2train.config.overrides.parse_overrides) sees them."""

from __future__ import annotations

# Hydra's prefixes before a key: + adds it, ++ adds or sets it, ~ deletes it.
PREFIXES = "+~"


def split_override(override: str) -> tuple[str, str | None]:
    """(key or group, value as typed) of one override, Hydra's prefix dropped; the value is
    None when there is no '=' (`~key`, a flag)."""
    key, equals, value = str(override).partition("=")
    return key.lstrip(PREFIXES), value if equals else None


def override_key(override: str) -> str:
    """The key (or group) an override sets, Hydra's prefix dropped."""
    return split_override(override)[0]
