"""The command line's overrides before anything is composed: their syntax (Hydra's own
parser), their normal form, and the group choices they name. Imports no AReaL and no schema,
so the checks that answer a typo in about a second (tau2train.config.key_index) can use it.
"""

from __future__ import annotations

import difflib
import importlib.resources

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from tau2train.config.errors import ConfigError
from tau2train.records.overrides import PREFIXES, override_key, split_override

CONFIG_MODULE = "tau2train.conf"
CONFIG_NAME = "config"
MULTIRUN_FLAGS = ("-m", "--multirun")


def _composed_groups() -> tuple[str, ...]:
    """The config groups conf/config.yaml's defaults list composes (`- group: choice`), in its
    order: the groups a user picks a choice of."""
    defaults = OmegaConf.load(str(importlib.resources.files(CONFIG_MODULE) / f"{CONFIG_NAME}.yaml")).defaults
    return tuple(name for entry in defaults if isinstance(entry, DictConfig) for name in entry)


GROUPS = _composed_groups()
# Keys that moved: the old key -> the one that holds the setting now.
MOVED_KEYS = {
    "econfig.turn_discount": "reward.turn_discount",
    "econfig.invalid_format_penalty": "reward.format_penalty",
}

# Settings that map a name the user picks (a domain, an sbatch option) to a value. Hydra merges
# `key={...}` into the map the config already has, and the struct flag refuses the keys that are
# new (every domain not named yet); its force-add prefix `++` merges them in, and the map's value
# type still checks each entry.
NAMED_MAPS = (
    "data.weights", "econfig.max_steps_by_domain", "econfig.reward_basis_by_domain", "econfig.user_llm_by_domain",
    "slurm.extra_sbatch",
)
# Groups the defaults list names as `null` (none chosen): `+group=choice` would add the group
# a second time, which Hydra refuses; it means `group=choice`.
NULL_GROUPS = ("experiment",)


def group_options(group: str) -> list[str]:
    """The YAML choices of a config group, read from the packaged conf/ folder."""
    folder = importlib.resources.files(CONFIG_MODULE) / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_choice(group: str, name: str) -> DictConfig:
    """One group choice's own YAML, uncomposed (to describe alternatives in messages)."""
    return OmegaConf.load(str(importlib.resources.files(CONFIG_MODULE) / group / f"{name}.yaml"))


def parse_overrides(overrides: list[str], config_loader: object = None) -> list[Override]:
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ConfigError(
            "flag", flags[0], "not a flag tau2train takes here",
            valid="-m/--multirun, --help, --hydra-help, --cfg job|hydra|all [--resolve] "
            "[--package PKG], --info [defaults|config|...]",
            fix="use one of those flags, or write the setting as key=value",
        )
    try:
        return OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    except OverrideParseException as error:
        bad = next((o for o in overrides if "=" not in o), " ".join(overrides))
        raise ConfigError(
            "override", bad, str(error).split("\n")[0] + ": " + str(error).split("\n")[1],
            valid="key=value, group=choice, +new_key=value, ~key",
            fix="write each override as key=value (quote values with spaces)",
        ) from None


def normalised(overrides: list[str]) -> list[str]:
    """`overrides` with `++` before each plain one that sets a named map or one of its
    entries, and `+experiment=X` read as `experiment=X`."""
    def sets_map(override: str) -> bool:
        key, value = split_override(override)
        return not override.startswith(tuple(PREFIXES)) and value is not None and any(
            key == m or key.startswith(m + ".") for m in NAMED_MAPS)

    def adds_null_group(override: str) -> bool:
        return override.startswith("+") and override_key(override) in NULL_GROUPS

    return [o.lstrip("+") if adds_null_group(o) else f"++{o}" if sets_map(o) else o for o in overrides]


def hydras_own(override: Override) -> bool:
    """Whether the override sets Hydra's own config (`hydra.*`) or picks one of its groups
    (`hydra/launcher=...`)."""
    key = override.key_or_group
    return key.split(".")[0] == "hydra" or key.startswith("hydra/")


def check_group_choices(overrides: list[Override]) -> None:
    """Refuse the first override that picks a group choice conf/ does not have."""
    for override in overrides:
        group = override.key_or_group
        if group in GROUPS and not override.is_sweep_override():
            value = override.value()
            options = group_options(group)
            if value not in options:
                raise ConfigError(
                    group,
                    value,
                    f"no such {group} choice",
                    valid=options,
                    fix=did_you_mean(value, options) + f"pick one of the {group} choices above",
                )


def check_moved_keys(overrides: list[Override]) -> None:
    """Refuse the first override of a key that moved, naming where it lives now."""
    for override in overrides:
        new = MOVED_KEYS.get(override.key_or_group)
        if new is not None:
            value = split_override(override.input_line or "")[1] or ""  # as typed (a sweep's too)
            raise ConfigError(
                override.key_or_group, value,
                f"moved to {new} (the reward group holds the reward's settings)",
                valid=new, fix=f"write {new}={value}" if value else f"use {new}",
            )


def did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f"did you mean '{close[0]}'? " if close else ""
