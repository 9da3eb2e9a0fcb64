"""submitit and hydra-submitit-launcher internals tau2train relies on (submitit 1.5,
hydra-submitit-launcher 1.4.0rc3); guarded by tests/test_compat.py.

hydra-submitit-launcher's `launch` builds `submitit.AutoExecutor(...)` by attribute lookup on
the submitit module and waits on every job; tau2train's launcher (hydra_plugins/
tau2train_slurm_launcher) swaps the class for the one call, to return once submitted or to
render the sbatch script a dry run shows, with submitit's own renderer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import submitit
from submitit.slurm.slurm import _make_sbatch_string


@contextmanager
def executor_class(cls: type) -> Iterator[None]:
    """`submitit.AutoExecutor` is `cls` while inside (the launcher plugin's one call)."""
    original = submitit.AutoExecutor
    submitit.AutoExecutor = cls
    try:
        yield
    finally:
        submitit.AutoExecutor = original


def sbatch_script(executor: submitit.AutoExecutor, count: int) -> str:
    """The sbatch script `executor` would submit for `count` jobs (more than one: one array)."""
    slurm = executor._executor
    parameters = dict(slurm.parameters)
    if count > 1:
        parameters["map_count"] = count
    return _make_sbatch_string(command=slurm._submitit_command_str, folder=slurm.folder, **parameters)
