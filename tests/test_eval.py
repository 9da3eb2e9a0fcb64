"""`python -m tau2train.run mode=eval ...` as a user runs it, against the scripted server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers.cli import run_cli

# the markers `make test PYTEST_ARGS="-m 'not slurm and not slow'"` leaves out
pytestmark = [pytest.mark.slow]

SECRET = "sk-test-agent-key-0123456789"


def eval_args(llm, root: Path, *extra: str) -> list[str]:
    return [
        "mode=eval",
        f"eval.agent_base_url={llm.base_url}",
        f"econfig.user_llm_base_url={llm.base_url}",
        "econfig.user_llm=user",
        f"cluster.fileroot={root}",
        *extra,
    ]


def test_eval_reports_pass_hat_k_on_each_tasks_own_basis(llm, tmp_path):
    result = run_cli(
        *eval_args(llm, tmp_path / "exp", "eval.agent_model=alternate", "eval.num_trials=2",
                   "econfig.reward_basis=[DB]"),  # a training shortcut eval must not use
        cwd=tmp_path,
        env={"OPENAI_API_KEY": SECRET},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "τ² evaluation: airline/test, 20 tasks x 2 trials, agent alternate" in out
    assert "scored on: each task's own reward basis" in out
    assert "40/40" in result.stderr  # the progress bar ran to the end

    [results_file] = (tmp_path / "exp").rglob("results.json")
    from tau2.data_model.simulation import Results

    results = Results.load(results_file)  # tau2's own format, as its viewer loads it
    assert len(results.simulations) == 40
    assert {s.trial for s in results.simulations} == {0, 1}
    for sim in results.simulations:
        task = next(t for t in results.tasks if t.id == sim.task_id)
        assert sim.reward_info.reward_basis == task.evaluation_criteria.reward_basis

    # pass^k by its definition (Yao et al.), from the saved simulations.
    successes: dict[str, int] = {}
    for sim in results.simulations:
        successes[sim.task_id] = successes.get(sim.task_id, 0) + (sim.reward_info.reward == 1.0)
    expected = {k: sum(math.comb(c, k) / math.comb(2, k) for c in successes.values()) / 20 for k in (1, 2)}
    assert expected[2] < expected[1] < 1.0  # the odd episodes of writing tasks failed
    report = json.loads(results_file.with_name("metrics.json").read_text())
    assert report["pass_hat_k"] == pytest.approx({"1": expected[1], "2": expected[2]})
    assert f"pass^1             {expected[1]:.4f}" in out
    assert f"pass^2             {expected[2]:.4f}" in out
    assert report["num_errors"] == 0

    # The report is in this job's offline wandb run (tracking=wandb, $WANDB_MODE=offline).
    [run_file] = results_file.parent.glob("wandb/offline-run-*/run-*.wandb")
    logged = run_file.read_bytes()
    assert b"avg_reward" in logged and b"pass^2" in logged
    assert b"tau2-qwen3-1.7b-airline" in logged  # the run group

    # The key reached the agent endpoint and nothing the run wrote.
    assert llm.auth["alternate"] == {f"Bearer {SECRET}"}
    for path in (tmp_path / "exp").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in out + result.stderr


def test_an_unreachable_agent_endpoint_stops_before_anything_is_written(tmp_path):
    result = run_cli(
        "mode=eval", "eval.agent_base_url=http://127.0.0.1:9/v1",
        "econfig.user_llm_base_url=http://127.0.0.1:9/v1", f"cluster.fileroot={tmp_path}/exp",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: eval.agent_base_url='http://127.0.0.1:9/v1': no server answers there")
    assert lines[-1] == "  fix:   start that server, or set eval.agent_base_url to where it listens"
    assert not (tmp_path / "exp").exists()


def test_eval_dry_run_prints_the_plan_and_starts_nothing(llm, tmp_path):
    result = run_cli(*eval_args(llm, tmp_path / "exp", "dry_run=true", "eval.num_trials=3"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tasks       airline/test, 3 trials each, 16 at a time" in result.stdout
    assert "scored on   each task's own reward basis" in result.stdout
    assert not (tmp_path / "exp").exists()
