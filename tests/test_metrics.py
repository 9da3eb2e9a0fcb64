"""The numbers an evaluation reports (tau2train/reports/metrics.py), against values computed by
hand in the comments: pass^k (tau2's unbiased C(c, k)/C(n, k), not (c/n)^k), pass@k, episodes
that failed for infrastructure reasons left out (or scored 0 when asked), and the standard
error of the average reward with tasks as the independent units."""

from __future__ import annotations

import math

import pytest

from tau2train.records.eval_report import InfraFailure
from tau2train.reports.metrics import COUNTED_AS_WRONG, EXCLUDED, Outcome, summarize

INFRA = None  # an episode that failed outside the agent


def outcomes(rewards: dict[str, list[float | None]]) -> list[Outcome]:
    """One Outcome per trial; INFRA: the user simulator failed in that trial."""
    return [
        Outcome(task, trial, 0.0, "user simulator unreachable", "user_sim") if r is INFRA else Outcome(task, trial, r)
        for task, trials in rewards.items()
        for trial, r in enumerate(trials)
    ]


def test_pass_hat_k_is_the_chance_that_k_of_the_n_trials_all_succeed():
    # 3 tasks x 4 trials; c successes of n = 4. pass^k = C(c, k)/C(4, k); C(4, k) = 4, 6, 4, 1
    #   task  c  pass^1  pass^2  pass^3  pass^4   pass@k = 1 - C(4-c, k)/C(4, k): k=1, 2, 3, 4
    #   a     3  3/4     3/6     1/4     0        3/4, 1, 1, 1
    #   b     4  1       1       1       1        1, 1, 1, 1
    #   c     2  2/4     1/6     0       0        2/4, 5/6, 1, 1
    # means over the tasks: pass^k 3/4, 5/9, 5/12, 1/3; pass@k 3/4, 17/18, 1, 1
    # ((c/n)^k would give pass^2 = (9/16 + 1 + 1/4)/3 = 29/48, not 5/9)
    report = summarize(outcomes({"a": [1, 1, 1, 0], "b": [1, 1, 1, 1], "c": [1, 0, 1, 0]}), num_trials=4)
    assert report["pass_hat_k"] == pytest.approx({"1": 3 / 4, "2": 5 / 9, "3": 5 / 12, "4": 1 / 3})
    assert report["pass_at_k"] == pytest.approx({"1": 3 / 4, "2": 17 / 18, "3": 1.0, "4": 1.0})
    assert report["num_tasks_scored"] == {"1": 3, "2": 3, "3": 3, "4": 3}
    assert report["avg_reward"] == pytest.approx(9 / 12)


def test_success_is_a_reward_of_1_within_a_millionth():
    # task a: 1 - 1e-7 succeeds, 0.99 does not; task b: 0.5 twice. Only successes make pass^k,
    # while the average reward counts partial rewards: (1 + 0.99 + 0.5 + 0.5)/4
    report = summarize(outcomes({"a": [1 - 1e-7, 0.99], "b": [0.5, 0.5]}), num_trials=2)
    assert report["pass_hat_k"] == pytest.approx({"1": (1 / 2 + 0) / 2, "2": 0.0})
    assert report["avg_reward"] == pytest.approx((1 - 1e-7 + 0.99 + 0.5 + 0.5) / 4)


def test_infrastructure_failures_are_left_out_of_the_counts():
    # x: 1, 1, failed -> n = 2, c = 2; y: 1, 0, 1 -> n = 3, c = 2
    #   pass^1 = (2/2 + 2/3)/2 = 5/6; pass^2 = (C(2,2)/C(2,2) + C(2,2)/C(3,2))/2 = (1 + 1/3)/2 = 2/3
    #   pass^3: x has only 2 scored trials, so y alone counts: C(2,3)/C(3,3) = 0
    report = summarize(outcomes({"x": [1, 1, INFRA], "y": [1, 0, 1]}), num_trials=3)
    assert report["pass_hat_k"] == pytest.approx({"1": 5 / 6, "2": 2 / 3, "3": 0.0})
    assert report["num_tasks_scored"] == {"1": 2, "2": 2, "3": 1}
    assert report["avg_reward"] == pytest.approx(4 / 5)
    assert (report["num_episodes"], report["num_scored_episodes"], report["num_infra_failures"]) == (6, 5, 1)
    assert report["infra_failures_are"] == EXCLUDED
    assert report["infra_failures"] == [InfraFailure("x", 2, "user simulator unreachable", "user_sim")]


def test_infrastructure_failures_counted_as_wrong_score_0():
    # x: 1, 1, 0 and y: 1, 0, 1: both n = 3, c = 2
    #   pass^1 = 2/3; pass^2 = C(2,2)/C(3,2) = 1/3; pass^3 = 0
    report = summarize(outcomes({"x": [1, 1, INFRA], "y": [1, 0, 1]}), num_trials=3, count_as_wrong=True)
    assert report["pass_hat_k"] == pytest.approx({"1": 2 / 3, "2": 1 / 3, "3": 0.0})
    assert report["num_tasks_scored"] == {"1": 2, "2": 2, "3": 2}
    assert report["avg_reward"] == pytest.approx(4 / 6)
    assert (report["num_episodes"], report["num_scored_episodes"], report["num_infra_failures"]) == (6, 6, 1)
    assert report["infra_failures_are"] == COUNTED_AS_WRONG


def test_a_task_whose_every_trial_failed_is_not_scored():
    report = summarize(outcomes({"z": [INFRA, INFRA]}), num_trials=2)
    assert report["pass_hat_k"] == {"1": None, "2": None} and report["pass_at_k"] == {"1": None, "2": None}
    assert report["num_tasks_scored"] == {"1": 0, "2": 0}
    assert report["avg_reward"] is None and report["avg_reward_se"] is None
    assert report["num_infra_failures"] == 2


def test_the_standard_error_takes_tasks_as_the_independent_units():
    # 3 tasks x 2 trials, rewards 0.5 0.5 | 1 1 | 0 0: task means 1/2, 1, 0 around 1/2, their sample
    # standard deviation sqrt((0 + 1/4 + 1/4)/2) = 1/2, over sqrt(3 tasks): 1/(2 sqrt 3)
    # (over the 6 episodes as if independent it would be sqrt(0.2)/sqrt(6) = 0.183, not 0.289).
    # pass^1's: successes per task 0, 1, 0 (0.5 is no success): mean 1/3, sample SD
    # sqrt((1/9 + 4/9 + 1/9)/2) = 1/sqrt(3), over sqrt(3): 1/3
    report = summarize(outcomes({"a": [0.5, 0.5], "b": [1, 1], "c": [0, 0]}), num_trials=2)
    assert report["avg_reward"] == pytest.approx(1 / 2)
    assert report["avg_reward_se"] == pytest.approx(1 / (2 * math.sqrt(3)))
    assert report["pass_hat_k"]["1"] == pytest.approx(1 / 3)
    assert report["pass_hat_1_se"] == pytest.approx(1 / 3)


def test_the_standard_error_with_unequal_trials_is_the_cluster_robust_one():
    # tasks as clusters, G of them, N episodes: SE^2 = G/(G-1) * sum over tasks of
    # (sum of the task's rewards - its trials x mean)^2 / N^2.
    # p: 1 1 1, q: 0, r: 1 0 (r's third trial failed, left out): N = 6, mean 4/6 = 2/3
    #   (3 - 3 * 2/3)^2 + (0 - 2/3)^2 + (1 - 2 * 2/3)^2 = 1 + 4/9 + 1/9 = 14/9
    #   SE = sqrt(3/2 * 14/9) / 6 = sqrt(7/3) / 6
    report = summarize(outcomes({"p": [1, 1, 1], "q": [0], "r": [1, 0, INFRA]}), num_trials=3)
    assert report["avg_reward"] == pytest.approx(2 / 3)
    assert report["avg_reward_se"] == pytest.approx(math.sqrt(7 / 3) / 6)
    assert report["pass_hat_1_se"] == pytest.approx(math.sqrt(7 / 3) / 6)  # rewards 0/1: the same


def test_one_task_has_no_standard_error():
    report = summarize(outcomes({"a": [1, 0, 1]}), num_trials=3)
    assert report["avg_reward"] == pytest.approx(2 / 3)
    assert report["avg_reward_se"] is None and report["pass_hat_1_se"] is None
