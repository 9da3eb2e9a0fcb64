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
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, OverrideParseException
from hydra_plugins.tau2train_slurm_launcher import register as register_launcher
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import (
    MissingMandatoryValue,
    OmegaConfBaseException,
    ValidationError,
)

from tau2train.errors import ConfigError
from tau2train.schemas import ExperimentConfig, register_configs

CONFIG_MODULE = "tau2train.conf"
CONFIG_NAME = "config"
GROUPS = ("model", "domain", "cluster", "allocation", "tracking", "user_sim")



@dataclass
class Composed:
    """One composed experiment: the typed config and the launcher Hydra would use."""

    config: ExperimentConfig
    choices: dict[str, str]
    launcher: dict[str, Any]
    overrides: list[str]


def group_options(group: str) -> list[str]:
    """The YAML choices of a config group, read from the packaged conf/ folder."""
    folder = importlib.resources.files(CONFIG_MODULE) / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@contextmanager
def _hydra_context():
    """Hydra's compose API for our packaged conf/ (after anyone who left Hydra initialised,
    e.g. AReaL's load_expr_config)."""
    register_configs()
    register_launcher()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, job_name="tau2train", version_base=None):
        yield


@contextmanager
def hydra_session():
    """The Hydra instance behind the compose API (its config loader and launchers)."""
    with _hydra_context():
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


def sweep_points(overrides: list[str]) -> list[list[str]]:
    """Expand `-m` sweep overrides (a=1,2 b=x,y, model=glob(*)) into one override list
    per job, as Hydra's basic sweeper does."""
    with _hydra_context():
        parsed = parse_overrides(overrides, GlobalHydra.instance().config_loader())
        return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def is_sweep_override(override: str) -> bool:
    """a=1,2 / x=interval(0,1) / model=glob(*): a value for the sweeper to choose."""
    return parse_overrides([override])[0].is_sweep_override()


# Group choices already in the experiment name (tau2-<model>-<domain>): not repeated in trials.
EXPERIMENT_NAME_KEYS = ("model", "domain", "experiment_name")


def with_trial_names(points: list[list[str]]) -> list[list[str]]:
    """Give each sweep point a trial_name derived from what varies across the sweep
    (`econfig.turn_discount=0.9,1.0` -> trial_name=turn_discount0.9, ...), so every job has
    its own run directory under the one experiment. Points that set trial_name keep it."""

    def key_values(point: list[str]) -> dict[str, str]:
        pairs = (o.lstrip("+~").split("=", 1) for o in point if "=" in o)
        return {key: value for key, value in pairs}

    parsed = [key_values(point) for point in points]
    keys = sorted({k for p in parsed for k in p})
    varying = [
        k for k in keys
        if k not in EXPERIMENT_NAME_KEYS and len({p.get(k) for p in parsed}) > 1
    ]
    if not varying or "trial_name" in keys:
        return points
    short = [k.rsplit(".", 1)[-1] for k in varying]
    labels = short if len(set(short)) == len(short) else [k.replace(".", "_") for k in varying]
    named = []
    for point, values in zip(points, parsed):
        parts = [label + _trial_safe(values.get(key, "default")) for key, label in zip(varying, labels)]
        named.append([*point, "trial_name=" + "_".join(parts)])
    return named


def _trial_safe(value: str) -> str:
    # AReaL forbids '-' and '/' in trial names; keep them readable and path-safe.
    value = value.strip("'\"").replace("-", "m")
    return "".join(c for c in value if c.isalnum() or c in "._")


def compose(overrides: list[str]) -> Composed:
    """Compose, type-check and convert one experiment; every failure is a ConfigError."""
    _check_group_choices(overrides)
    unknown = _unknown_keys(overrides) if _adds_keys(overrides) else []
    if unknown:
        raise unknown[0]
    try:
        with _hydra_context():
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
    with _hydra_context():
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
