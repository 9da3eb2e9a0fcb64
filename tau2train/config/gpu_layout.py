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


def role_key(exp, role: str) -> tuple[str, str]:
    """The key the user set a role's backend with (`exp`: the ExperimentConfig): the allocation
    group, or the role itself."""
    value = getattr(exp, role).backend
    if getattr(exp.allocation, role) == value:
        return f"allocation.{role}", value
    return f"{role}.backend", value
