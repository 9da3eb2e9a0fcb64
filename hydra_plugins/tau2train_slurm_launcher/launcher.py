"""hydra-submitit-launcher's Slurm launcher, returning once the jobs are submitted.

The plugin turns the jobs into one sbatch script (one job array for a `-m` sweep) and makes
each job requeue itself through submitit's checkpoint hook when it is preempted or times
out. What it lacks for days-long training is returning once submitted (its `launch` waits
on every job's result), so this launcher keeps all of its handling and, for the one call,
swaps in an executor that returns the submitted jobs, or, for a dry run, the sbatch script
it would have submitted. It also exports the config's `slurm.env_vars` in the script, writes
the sbatch options of `slurm.constraint` & co. (its `sbatch_options`), and
waits as the stock launcher does when a sweeper needs the results (`wait_for_results`,
Optuna). Hydra loads launchers only from the hydra_plugins package; the launcher's config node is in
config.py beside this file.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable, Sequence

import submitit
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf

from tau2train.compat.submitit import executor_class, sbatch_script


class _SubmitOnlyExecutor(submitit.AutoExecutor):
    """Submits as usual; each job is its own result, so nothing waits for it to end."""

    def map_array(self, fn: Callable, *iterables: Sequence) -> list:
        return [_Ready(job) for job in super().map_array(fn, *iterables)]


class _PreviewExecutor(submitit.AutoExecutor):
    """Renders the sbatch script submitit would submit, and submits nothing."""

    def map_array(self, fn: Callable, *iterables: Sequence) -> list:
        return [_Ready(sbatch_script(self, len(iterables[0])))]


class _Ready:
    def __init__(self, value: Any) -> None:
        self.value = value

    def results(self) -> list:
        return [self.value]


class SubmitOnlySlurmLauncher(SlurmLauncher):
    """hydra-submitit-launcher's SlurmLauncher that returns once its jobs are submitted.

    Pickled into every job: its `__call__` (compose the point, run it; here also failing
    when the run failed) and `checkpoint` (requeue with the same overrides, hence the same
    trial) are the plugin's.
    """

    preview = False

    def __init__(self, wait_for_results: bool = False, sbatch_options: Any = None, **params: Any) -> None:
        super().__init__(**params)
        self.wait_for_results = wait_for_results
        # slurm.constraint & co. (tau2train.config.sbatch.sbatch_options): submitit writes
        # additional_parameters as #SBATCH lines, True as a flag without a value
        options = OmegaConf.to_container(sbatch_options) if OmegaConf.is_config(sbatch_options) else sbatch_options
        self.params["additional_parameters"] = {**(self.params.get("additional_parameters") or {}), **(options or {})}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # The job's environment: `slurm.env_vars` exported before the setup lines. sbatch
        # passes the submitting shell's environment on, so keys stay there, never in the script.
        env = OmegaConf.to_container(OmegaConf.select(config, "slurm.env_vars", default={}), resolve=True)
        exports = [f"export {k}={shlex.quote(str(v))}" for k, v in env.items()]
        self.params["setup"] = exports + list(self.params.get("setup") or [])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = super().__call__(*args, **kwargs)
        # Hydra's run_job hands back a failed job's exception; raising it makes the job fail
        # in submitit's and Slurm's eyes too (exit status, result pickle, sacct).
        _ = result.return_value
        return result

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        if self.wait_for_results:  # a sweeper that chooses points from results (Optuna)
            return super().launch(job_overrides, initial_job_idx)
        with executor_class(_PreviewExecutor if self.preview else _SubmitOnlyExecutor):
            return super().launch(job_overrides, initial_job_idx)


def register() -> None:
    """Make the launcher class known to Hydra's plugin registry (Hydra instantiates launchers
    only from it). Hydra's plugin scan finds this package in a regular install but not
    through an editable install's import hook, so tau2train's launching code registers it
    before it launches; the config node is registered with the other configs
    (hydra_plugins.tau2train_slurm_launcher.config, by tau2train.config.registry)."""
    Plugins.instance().register(SubmitOnlySlurmLauncher)
