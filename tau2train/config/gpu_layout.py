"""The GPU layout of a training run, as AReaL's allocation parser reads it."""

from __future__ import annotations

from dataclasses import dataclass

from areal.api.alloc_mode import ModelAllocation


@dataclass
class Layout:
    """The parsed allocation: one AReaL ModelAllocation per role."""

    rollout: ModelAllocation
    actor: ModelAllocation

    @property
    def n_gpus(self) -> int:
        return self.rollout.parallel.world_size + self.actor.parallel.world_size
