"""Hydra internals tau2train relies on (hydra-core 1.4.0.dev1, AReaL's pin); guarded by
tests/test_compat.py. Hydra's public API composes configs, but launching composed jobs through
a launcher plugin, and expanding a sweep into its points, go through `hydra._internal`."""

from __future__ import annotations

from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra.core.override_parser.types import Override
from hydra.types import HydraContext
from omegaconf import DictConfig

__all__ = ["Hydra", "expand_sweep", "launcher_context"]


def launcher_context(hydra: Hydra, master: DictConfig) -> HydraContext:
    """What a launcher plugin is instantiated with: the app's config loader and callbacks."""
    return HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(master))


def expand_sweep(parsed: list[Override]) -> list[list[str]]:
    """Every point of a sweep's overrides, as Hydra's basic sweeper expands them (its cartesian
    product, in its order), one batch."""
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]
