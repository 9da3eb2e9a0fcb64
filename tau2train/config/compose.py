"""Compose an experiment from the config groups and turn it into typed objects.

Hydra does the composition; this module only translates its failures (unknown group
choice, unknown key, wrong type, unset mandatory value) into one `ConfigError` that
names the key, the value, the valid choices and the fix.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import (
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from tau2train.config.errors import ConfigError
from tau2train.config.overrides import (
    CONFIG_MODULE,
    CONFIG_NAME,
    GROUPS,
    check_group_choices,
    check_moved_keys,
    did_you_mean,
    normalised,
    parse_overrides,
)
from tau2train.config.registry import register
from tau2train.records.overrides import override_key
from tau2train.schemas import ExperimentConfig


@dataclass(frozen=True)
class Composed:
    """One composed experiment: the typed config, its group choices, the launcher Hydra would
    use and the overrides it was composed from (validated: tau2train.config.checked)."""

    config: ExperimentConfig
    choices: dict[str, str]
    launcher: dict[str, Any]
    overrides: tuple[str, ...]


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


def compose(overrides: list[str]) -> Composed:
    """Compose, type-check and convert one experiment; every failure is a ConfigError."""
    overrides = normalised(overrides)
    parsed = parse_overrides(overrides)
    check_group_choices(parsed)
    check_moved_keys(parsed)
    unknown = _unknown_keys(overrides) if _adds_keys(overrides) else []
    if unknown:
        raise unknown[0]
    try:
        with hydra_context():
            cfg = hydra_compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, AssertionError, AttributeError) as error:
        # OmegaConf asserts (or fails on None) when an override sets a key under a null node
        raise _explain_composition_error(error, overrides) from None

    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    return Composed(_to_object(cfg), _choices(cfg.hydra), launcher, tuple(overrides))


def to_composed(cfg: DictConfig) -> Composed:
    """The config Hydra composed for a running job (hydra-submitit-launcher's), typed; the
    job's own launcher settings are not needed inside it."""
    hydra_node = HydraConfig.get()
    return Composed(_to_object(cfg), _choices(hydra_node), {}, tuple(hydra_node.overrides.task))


def _choices(hydra_node: DictConfig) -> dict[str, str]:
    return {g: str(hydra_node.runtime.choices.get(g)) for g in GROUPS}


def _adds_keys(overrides: list[str]) -> bool:
    return any(o.startswith("+") for o in overrides)


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
    groups_only = [o for o in overrides if override_key(o) in GROUPS]
    with hydra_context():
        reference = hydra_compose(CONFIG_NAME, overrides=groups_only)
    errors = []
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if key in GROUPS or key.startswith("hydra") or override.is_delete():
            continue
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(reference, parent_key) if parent_key else reference
        null = _null_ancestor(reference, key)
        if null:
            errors.append(ConfigError(
                key, override.value(),
                f"'{null}' is null in the composed config, so it has no keys to set from the command line",
                fix=f"give {null} its value in an experiment YAML (conf/experiment/), e.g. "
                    f"{null.rpartition('.')[2]}: {{{key[len(null) + 1:]}: {override.value()}, ...}}",
            ))
            continue
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
            fix=did_you_mean(leaf, valid)
            + "list every key with `python -m tau2train.run --cfg job`",
        ))
    return errors


def _explain_value_error(error: OmegaConfBaseException) -> ConfigError:
    raised = _raised_by_resolver(error)
    if raised is not None:
        return raised
    key = getattr(error, "full_key", None) or "config"
    message = str(error).split("\n")[0]
    if isinstance(error, ValidationError):
        return ConfigError(key, getattr(error, "value", None), message,
                           fix=f"give {key} a value of the type its schema declares "
                           "(see `python -m tau2train.run --help`)")
    return ConfigError(key, getattr(error, "value", None), message,
                       fix="see `python -m tau2train.run --cfg job` for the composed values")


def _raised_by_resolver(error: BaseException) -> ConfigError | None:
    """The ConfigError one of tau2train's resolvers raised, under OmegaConf's wrapping."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ConfigError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _null_ancestor(reference: DictConfig, key: str) -> str | None:
    """The nearest node above `key` that is null in `reference` (None: there is none)."""
    parts = key.split(".")
    for end in range(1, len(parts)):
        path = ".".join(parts[:end])
        node = OmegaConf.select(reference, path, default=...)
        if node is ...:
            return None
        if node is None:
            return path
    return None
