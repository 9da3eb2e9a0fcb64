"""`-m hydra/sweeper=optuna`: Hydra's Optuna sweeper picks the points from the rewards the
jobs return, locally and as Slurm job arrays (hydra-optuna-sweeper is a test dependency)."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers.cli import slurm_overrides

# the markers `make test PYTEST_ARGS="-m 'not slurm and not slow'"` leaves out
pytestmark = [pytest.mark.slow]

# an endpoint's evaluation is filed under the evaluated model's experiment: a sweep over the
# evaluated model names the one experiment that holds its points
EXPERIMENT = "tau2-agents-airline"
OPTUNA = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=1",
          "eval.agent_model=choice(gold,wrong)", f"experiment_name={EXPERIMENT}"]


def eval_args(llm) -> list[str]:
    return ["mode=eval", "eval.num_trials=1", f"eval.agent_base_url={llm.base_url}",
            f"econfig.user_llm_base_url={llm.base_url}", "econfig.user_llm=user", "tracking=none"]


def test_optuna_picks_points_from_the_rewards_the_runs_return(cli, llm, tmp_path):
    result = cli(*OPTUNA, "hydra.sweeper.n_trials=3", *eval_args(llm), f"cluster.fileroot={tmp_path}/exp",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    experiment = tmp_path / "exp" / EXPERIMENT
    records = {p.parent.name: json.loads(p.read_text()) for p in experiment.glob("*/job.json")}
    assert sorted(records) == ["trial0", "trial1", "trial2"]  # one run dir per Optuna trial
    rewards = {}
    for trial, record in records.items():
        assert record["state"] == "completed" and record["mode"] == "eval"
        [metrics] = (experiment / trial).glob("eval/*/metrics.json")
        agent = next(o.split("=")[1] for o in record["overrides"] if o.startswith("eval.agent_model="))
        rewards[agent] = json.loads(metrics.read_text())["avg_reward"]
    assert rewards["gold"] == 1.0 > rewards["wrong"]  # seed 1 samples both
    best = yaml.safe_load((experiment / "optimization_results.yaml").read_text())
    assert best["best_params"] == {"eval.agent_model": "gold"} and best["best_value"] == 1.0
    assert f"sweep results: {experiment}/optimization_results.yaml" in result.stdout


@pytest.mark.slurm
def test_optuna_batches_run_as_slurm_job_arrays_and_wait_for_their_rewards(cli, llm, tmp_path):
    result = cli(*OPTUNA, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", *eval_args(llm),
                     *slurm_overrides(tmp_path), "slurm.cpus_per_task=1", "slurm.mem_gb=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    experiment = tmp_path / "experiments" / EXPERIMENT
    records = [json.loads(p.read_text()) for p in experiment.glob("*/job.json")]
    assert [r["state"] for r in records] == ["completed", "completed"]
    assert len({r["slurm_job_id"].split("_")[0] for r in records}) == 1  # one array per batch
    rewards = [json.loads(p.read_text())["avg_reward"] for p in experiment.glob("*/eval/*/metrics.json")]
    best = yaml.safe_load((experiment / "optimization_results.yaml").read_text())
    assert len(rewards) == 2 and best["best_value"] == max(rewards)  # the jobs' rewards reached Optuna
