"""`tau2train-submission` (tau2train/reports/leaderboard.py) given the README's globs over a run
directory where a domain was evaluated more than once: it takes each domain's newest evaluation
(the time its directory is named with), or the one `--take` names, and says which it took and
which it skipped. The evaluation directories are written by mode=eval's own writer
(tests/helpers/evaluations.py), named as mode=eval names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import Result, in_process
from helpers.evaluations import INFRA, write_evaluation

from tau2train.records.layout import eval_dir
from tau2train.reports.leaderboard import main


def evaluate(run_dir: Path, domain: str, stamp: str, solved: int) -> Path:
    """An evaluation of 2 tasks x 1 trial, `solved` of them solved."""
    return write_evaluation(eval_dir(run_dir, domain, "test", "gold", stamp), domain,
                            [[1]] * solved + [[0]] * (2 - solved), agent="gold")


def submit(*args: object, cwd: Path) -> Result:
    return in_process(*map(str, args), cwd=cwd, main=main)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """airline evaluated twice (the older solving nothing, the newer everything), retail once."""
    run = tmp_path / "tau2-gold-airline" / "trial0"
    evaluate(run, "airline", "20260101-090000", solved=0)
    evaluate(run, "airline", "20260102-090000", solved=2)
    evaluate(run, "retail", "20260101-100000", solved=1)
    return run


def globbed(run_dir: Path, domain: str) -> list[Path]:
    """What the shell makes of the README's <run_dir>/eval/<domain>-test-*."""
    return sorted((run_dir / "eval").glob(f"{domain}-test-*"))


def test_each_domains_newest_evaluation_is_taken_and_the_output_says_which(run_dir: Path, tmp_path: Path):
    older, newer = globbed(run_dir, "airline")
    [retail] = globbed(run_dir, "retail")
    out = tmp_path / "submission.json"
    result = submit(*globbed(run_dir, "airline"), *globbed(run_dir, "retail"), "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "τ² leaderboard submission for gold (standard), from 2 evaluation(s):",
        f"  airline: took {newer} (the newest of 2); skipped {older}",
        f"  retail: took {retail}",
    ]
    results = json.loads(out.read_text())["results"]
    assert (results["airline"]["pass_1"], results["retail"]["pass_1"]) == (100.0, 50.0)
    # the run directory itself: the same choice
    again = submit(run_dir, "-o", tmp_path / "again.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["results"] == results


def test_take_chooses_a_domains_evaluation_instead_of_the_newest(run_dir: Path, tmp_path: Path):
    older, newer = globbed(run_dir, "airline")
    out = tmp_path / "submission.json"
    result = submit(run_dir, "--take", older, "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"  airline: took {older} (--take); skipped {newer}" in result.stdout.splitlines()
    assert json.loads(out.read_text())["results"]["airline"]["pass_1"] == 0.0


def test_no_newest_evaluation_or_a_wrong_take_is_refused(run_dir: Path, tmp_path: Path):
    older, newer = globbed(run_dir, "airline")
    twin = evaluate(tmp_path / "tau2-gold-airline" / "trial1", "airline", "20260102-090000", solved=1)
    out = tmp_path / "submission.json"
    result = submit(run_dir, twin, "-o", out, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and not out.exists()
    assert result.stderr.strip().splitlines() == [
        "error: a submission holds one evaluation per domain; these domains have several, none newer "
        "than the others (by the time their directories are named with):",
        f"  airline: {newer}, {twin}",
        "name the one to use for each: --take EVAL_DIR",
    ]
    assert submit(run_dir, twin, "--take", twin, "-o", out, cwd=tmp_path).returncode == 0
    for take, says in ((run_dir, f"error: --take {run_dir}: not a finished evaluation directory"),
                       (older, "error: --take names two evaluations of airline: ")):
        result = submit(run_dir, "--take", newer, "--take", take, "-o", tmp_path / "x.json", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.startswith(says), result.stderr


def test_an_incomplete_evaluation_or_a_null_result_is_refused(tmp_path: Path):
    """A result that was never obtained does not pass for one: an evaluation marked incomplete
    (more of its episodes failed outside the agent than eval.max_infra_failure_rate allows), or
    one whose pass^k is null up to its trials (every trial of its tasks lost), is refused by name."""
    run = tmp_path / "tau2-gold-airline" / "trial0"
    retail = evaluate(run, "retail", "20260101-100000", solved=2)
    lost = write_evaluation(eval_dir(run, "airline", "test", "gold", "20260102-090000"), "airline",
                            [[INFRA], [1]], agent="gold")
    nulls = write_evaluation(eval_dir(run, "airline", "test", "gold", "20260103-090000"), "airline",
                             [[INFRA], [INFRA]], agent="gold", max_infra_failure_rate=1.0)
    assert not (lost / "submission.json").exists()  # mode=eval's writer leaves it out
    [first] = json.loads((lost / "metrics.json").read_text())["infra_failures"]
    retry = "evaluate airline again, or --take another evaluation of it"
    out = tmp_path / "submission.json"
    for taken, says in (
        (lost, f"error: {lost} is an incomplete evaluation: 1 of 2 episodes failed outside the agent, more than "
               "eval.max_infra_failure_rate=0.1 allows (cause: 1 user simulator); first: task "
               f"{first['task_id']} trial 0: APIConnectionError: user simulator down; {retry}"),
        (nulls, f"error: {nulls} holds no value for pass^1 (null: no task had that many trials scored; "
                f"2 of 2 episodes failed outside the agent); {retry}"),
    ):
        result = submit(taken, retail, "-o", out, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == "" and not out.exists(), result
        assert result.stderr.strip() == says
