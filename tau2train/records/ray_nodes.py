"""What a Ray cluster's nodes report before a run joins it (tau2train.config.ray_cluster asks,
in a process of its own): one `RayNode` per node Ray knows, as JSON lines between the two."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RayNode:
    ip: str
    alive: bool
    cpus: float
    gpus: float
    memory_gb: float
    hostname: str = ""
    head: bool = False
    node_id: str = ""  # Ray's, in hex
    # what the node's Python environment carries ("" when not asked, or the node did not answer)
    tau2train: str = ""
    areal: str = ""
    # why the environment could not be read there ("" when it could, or was not asked)
    problem: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> RayNode:
        return cls(**json.loads(line))
