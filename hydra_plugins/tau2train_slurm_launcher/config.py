"""The config node of `hydra/launcher=tau2train_slurm` (hydra-submitit-launcher's
SlurmQueueConf, aimed at our launcher): what composing a `cluster=slurm` config needs,
without importing submitit or the launcher itself."""

# No `from __future__ import annotations` here: Hydra's plugin scan runs this module without
# entering it in sys.modules, and @dataclass cannot read string annotations of such a module
# (every Hydra app in this environment, AReaL's load_expr_config included, would fail).
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

LAUNCHER_NAME = "tau2train_slurm"


@dataclass
class SubmitOnlySlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.tau2train_slurm_launcher.launcher.SubmitOnlySlurmLauncher"
    # wait for every job's result, as a sweeper choosing points from rewards needs
    wait_for_results: bool = False
    # sbatch options of tau2train's typed keys (slurm.constraint & co.), added to
    # additional_parameters; kept apart so that `+hydra.launcher.additional_parameters.X=...` works
    sbatch_options: dict[str, Any] = field(default_factory=dict)


def store() -> None:
    """Make `hydra/launcher=tau2train_slurm` choosable."""
    ConfigStore.instance().store(
        group="hydra/launcher", name=LAUNCHER_NAME, node=SubmitOnlySlurmQueueConf(), provider="tau2train"
    )
