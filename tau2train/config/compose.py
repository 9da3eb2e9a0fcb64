"""Compose an experiment from the config groups and turn it into typed objects.

Hydra does the composition; this module only translates its failures (unknown group
choice, unknown key, wrong type, unset mandatory value) into one `ConfigError` that
names the key, the value, the valid choices and the fix.
"""

from __future__ import annotations

import difflib
import importlib.resources
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import (
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout
from tau2train.config.registry import register
from tau2train.schemas import ExperimentConfig

CONFIG_MODULE = "tau2train.conf"
CONFIG_NAME = "config"
GROUPS = ("model", "domain", "data", "cluster", "allocation", "tracking", "user_sim", "experiment")


@dataclass
class Composed:
    """One composed experiment: the typed config, the launcher Hydra would use, and (once
    validated, for mode=train) the parsed GPU layout."""

    config: ExperimentConfig
    choices: dict[str, str]
    launcher: dict[str, Any]
    overrides: list[str]
    layout: Layout | None = None


def group_options(group: str) -> list[str]:
    """The YAML choices of a config group, read from the packaged conf/ folder."""
    folder = importlib.resources.files(CONFIG_MODULE) / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@contextmanager
def hydra_context():
    """Hydra's compose API for our packaged conf/ (after anyone who left Hydra initialised,
    e.g. AReaL's load_expr_config)."""
    register()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, job_name="tau2train", version_base=None):
        yield


@contextmanager
def hydra_session():
    """The Hydra instance behind the compose API (its config loader and launchers)."""
    with hydra_context():
        yield GlobalHydra.instance().hydra


def load_choice(group: str, name: str) -> DictConfig:
    """One group choice's own YAML, uncomposed (to describe alternatives in messages)."""
    return OmegaConf.load(str(importlib.resources.files(CONFIG_MODULE) / group / f"{name}.yaml"))


def parse_overrides(overrides: list[str], config_loader: Any = None) -> list[Override]:
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


# Settings that map a domain to a value. Hydra merges `key={...}` into the map the config
# already has, and the struct flag refuses the keys that are new (every domain not named yet);
# its force-add prefix `++` merges them in, and the map's value type still checks each entry.
DOMAIN_MAPS = (
    "data.weights", "econfig.max_steps_by_domain", "econfig.reward_basis_by_domain", "econfig.user_llm_by_domain",
)


# Groups the defaults list names as `null` (none chosen): `+group=choice` would add the group
# a second time, which Hydra refuses; it means `group=choice`.
NULL_GROUPS = ("experiment",)


def normalised(overrides: list[str]) -> list[str]:
    """`overrides` with `++` before each plain one that sets a domain map or one of its
    entries, and `+experiment=X` read as `experiment=X`."""
    def sets_map(override: str) -> bool:
        key = override.split("=", 1)[0]
        return "=" in override and any(key == m or key.startswith(m + ".") for m in DOMAIN_MAPS)

    def adds_null_group(override: str) -> bool:
        return override.startswith("+") and override.lstrip("+").split("=", 1)[0] in NULL_GROUPS

    return [o.lstrip("+") if adds_null_group(o) else f"++{o}" if sets_map(o) else o for o in overrides]


def compose(overrides: list[str]) -> Composed:
    """Compose, type-check and convert one experiment; every failure is a ConfigError."""
    overrides = normalised(overrides)
    _check_group_choices(overrides)
    unknown = _unknown_keys(overrides) if _adds_keys(overrides) else []
    if unknown:
        raise unknown[0]
    try:
        with hydra_context():
            cfg = hydra_compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise _explain_composition_error(error, overrides) from None

    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    return Composed(_to_object(cfg), _choices(cfg.hydra), launcher, list(overrides))


def to_composed(cfg: DictConfig) -> Composed:
    """The config Hydra composed for a running job (hydra-submitit-launcher's), typed; the
    job's own launcher settings are not needed inside it."""
    hydra_node = HydraConfig.get()
    return Composed(_to_object(cfg), _choices(hydra_node), {}, list(hydra_node.overrides.task))


def _choices(hydra_node: DictConfig) -> dict[str, str]:
    return {g: str(hydra_node.runtime.choices.get(g)) for g in GROUPS}


def _adds_keys(overrides: list[str]) -> bool:
    return any(o.startswith("+") for o in overrides)


def _check_group_choices(overrides: list[str]) -> None:
    for override in parse_overrides(overrides):
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
                    fix=_did_you_mean(value, options) + f"pick one of the {group} choices above",
                )


def _to_object(cfg: DictConfig) -> ExperimentConfig:
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)  # absent in the config Hydra hands a running job
    try:
        experiment = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        key = error.full_key
        raise ConfigError(
            key,
            "???",
            "must be set",
            fix=f"add {key}=<value> to the command line",
        ) from None
    except OmegaConfBaseException as error:
        raise _explain_value_error(error) from None
    except (ValueError, AssertionError, TypeError) as error:
        # AReaL's own dataclass validation (__post_init__) rejected the values.
        raise ConfigError("config", "(composed)", f"AReaL rejected it: {error}",
                          fix="change the value AReaL names above") from None
    assert isinstance(experiment, ExperimentConfig)
    return experiment


def _explain_composition_error(error: Exception, overrides: list[str]) -> ConfigError:
    unknown = _unknown_keys(overrides)
    if unknown:
        return unknown[0]
    cause = error.__cause__ or error
    if isinstance(cause, OmegaConfBaseException):
        return _explain_value_error(cause)
    return ConfigError("overrides", " ".join(overrides), str(error).strip(),
                       fix="check the override syntax: key=value, group=choice, +new_key=value")


def _unknown_keys(overrides: list[str]) -> list[ConfigError]:
    """Overrides naming keys the composed config does not have, judged against the
    config composed from the group choices alone."""
    groups_only = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in GROUPS]
    with hydra_context():
        reference = hydra_compose(CONFIG_NAME, overrides=groups_only)
    errors = []
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if key in GROUPS or key.startswith("hydra") or override.is_delete():
            continue
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(reference, parent_key) if parent_key else reference
        if not isinstance(parent, DictConfig) or leaf in parent:
            continue
        if not parent._is_typed():
            if override.is_add() or override.is_force_add():
                continue
            errors.append(ConfigError(
                key,
                override.value(),
                f"'{parent_key}' is a free-form mapping that has no '{leaf}' yet",
                fix=f"add a new entry with a leading '+': +{key}={override.value()}",
            ))
            continue
        valid = sorted(str(k) for k in parent.keys())
        where = f"'{parent_key}'" if parent_key else "the top level"
        errors.append(ConfigError(
            key,
            override.value(),
            f"unknown key: {where} has no '{leaf}'",
            valid=valid,
            fix=_did_you_mean(leaf, valid)
            + "list every key with `python -m tau2train.run --cfg job`",
        ))
    return errors


def _explain_value_error(error: OmegaConfBaseException) -> ConfigError:
    key = getattr(error, "full_key", None) or "config"
    message = str(error).split("\n")[0]
    if isinstance(error, ValidationError):
        return ConfigError(key, getattr(error, "value", None), message,
                           fix=f"give {key} a value of the type its schema declares "
                           "(see `python -m tau2train.run --help`)")
    return ConfigError(key, getattr(error, "value", None), message,
                       fix="see `python -m tau2train.run --cfg job` for the composed values")


def _did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f"did you mean '{close[0]}'? " if close else ""
