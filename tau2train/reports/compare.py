"""`tau2train-compare EVAL_A EVAL_B`: is one evaluation better than the other, per domain?

EVAL_A and EVAL_B are evaluation directories (`<run_dir>/eval/<domain>-<split>-<model>-<time>/`)
or directories holding evaluations (a run directory, an experiment root), where the newest
evaluation of each domain is taken. The two sides pair by domain; evaluations of different
domains, or whose evaluation contracts differ in a term that changes scores (split, task set,
tasks scored, user simulator and its arguments and checkpoint, judge, reward basis, the agent's
sampling, step limit, prompts, tau2's version: metrics.json's `contract`), are refused (exit 2),
each difference listed; `--allow-different TERM` compares them anyway and says so.

What is read: each evaluation's metrics.json (domain, split, task set, how infrastructure
failures were scored) and its results.json through tau2's own `Results` model, one success or
failure per episode (tau2's `is_successful`: reward 1). Episodes that failed outside the agent
are left out as metrics.py leaves them out (or scored 0 where that evaluation was run with
`eval.count_failures_as_wrong=true`), so each side's pass^1 is its metrics.json's.

The numbers, per domain:

- pass^1 of each: the mean over its tasks of each task's success rate over its trials.
- B − A: the mean, over the tasks scored on both sides, of d_t = rate_B(t) − rate_A(t): the
  same tasks on both sides, so a task's difficulty cancels (a paired difference).
- Its 95% interval: a paired bootstrap with tasks as the resampled units (the trials of one
  task are not independent; tasks are): resample the n tasks with replacement, take the mean of
  their d_t; the interval runs from the 2.5th to the 97.5th percentile of that mean. The
  bootstrap distribution is computed exactly, not sampled: d_t lies on a grid of 1/L (L the
  least common multiple of the trial counts), so the sum of n draws is the n-fold convolution of
  d_t's empirical distribution (one FFT). No seed: the interval is the limit of infinitely many
  bootstrap resamples, the same on every run.
- Verdict: "B better" when the whole interval lies above 0, "A better" when below, otherwise
  "not distinguishable with N trials" (N trials per task).
- Solved only in A / only in B: a task is solved when it succeeded in more than half of its
  scored trials (with one trial: that trial succeeded); the counts are the tasks solved on one
  side and not on the other.
- Trials per task to resolve a gap of this size: the distance from B − A to the interval's end
  nearer 0 taken to shrink as 1/√(trials per task), so K·((B − A − that end)/(B − A))² trials
  put that end at 0. That holds when the task-to-task spread of d_t is all trial-to-trial noise;
  real differences between tasks do not average out over trials, so read it as a lower bound.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from tau2train.records.eval_report import (
    CONTRACT_TERMS,
    INFRA_ERROR_KEY,
    NOTED_TERMS,
    EvalReport,
    TaskSet,
    TermDifference,
    contract_differences,
    read_eval_report,
)
from tau2train.records.layout import RESULTS_NAME, eval_stamp, metrics_files
from tau2train.reports.metrics import COUNTED_AS_WRONG, Outcome, scored_outcomes
from tau2train.reports.tables import align

LEVEL = 0.95
# Exit status when the two sides cannot be compared.
BAD_INPUT_EXIT_CODE = 2
NAMES = ("A", "B")
SOLVED = "solved: succeeded in more than half of its trials"


class CannotCompare(Exception):
    """The evaluations given do not compare: one message for the user."""


@dataclass(frozen=True)
class TaskOutcome:
    """One task's scored trials on one side."""

    task_id: str
    successes: int
    trials: int

    @property
    def rate(self) -> Fraction:
        return Fraction(self.successes, self.trials)

    @property
    def solved(self) -> bool:
        return 2 * self.successes > self.trials


@dataclass(frozen=True)
class Evaluation:
    """One side: an evaluation's directory and its report (metrics.json)."""

    path: Path
    report: EvalReport


@dataclass(frozen=True)
class Comparison:
    """B against A on one domain's split (see the module docstring for each number)."""

    domain: str
    split: str
    task_set: TaskSet
    trials: tuple[int, int]  # trials per task of A, of B
    pass1: tuple[float | None, float | None]
    num_tasks: int  # tasks scored on both sides
    difference: float  # B − A
    low: float
    high: float
    solved_only: tuple[int, int]  # tasks solved only in A, only in B
    trials_to_resolve: int | None  # None: no gap

    @property
    def trials_text(self) -> str:
        a, b = self.trials
        return str(a) if a == b else f"{a} and {b}"

    def verdict(self, names: tuple[str, str] = NAMES) -> str:
        if self.low > 0:
            return f"{names[1]} better"
        if self.high < 0:
            return f"{names[0]} better"
        return f"not distinguishable with {self.trials_text} trials"

    def resolve_text(self) -> str:
        if self.trials_to_resolve is None:
            return "no gap to resolve"
        if self.low > 0 or self.high < 0:
            return f"resolved with {self.trials_text} trials per task"
        return f"at least ~{self.trials_to_resolve} trials per task (if the spread is all trial noise)"


def read_outcomes(results_file: Path) -> list[Outcome]:
    """One Outcome per episode of a results.json, read through tau2's Results model."""
    from pydantic import ValidationError
    from tau2.data_model.simulation import Results

    try:
        results = Results.load(results_file)
    except (OSError, ValidationError) as error:
        raise CannotCompare(f"{results_file} is not a readable tau2 results file: {error}") from None
    outcomes = []
    for sim in results.simulations:
        info = sim.reward_info
        error = (info.info or {}).get(INFRA_ERROR_KEY) if info else None
        outcomes.append(Outcome(sim.task_id, sim.trial or 0, info.reward if info else 0.0, error))
    return outcomes


def task_outcomes(outcomes: list[Outcome], count_as_wrong: bool = False) -> dict[str, TaskOutcome]:
    """Each task's successes over its scored trials (tau2's is_successful), as metrics.py counts."""
    from tau2.metrics.agent_metrics import is_successful

    by_task: dict[str, list[bool]] = defaultdict(list)
    for outcome in scored_outcomes(outcomes, count_as_wrong):
        by_task[outcome.task_id].append(is_successful(outcome.reward))
    return {task: TaskOutcome(task, sum(wins), len(wins)) for task, wins in by_task.items()}


def bootstrap_interval(differences: list[Fraction], level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of the mean of the n differences resampled with replacement, from
    the exact bootstrap distribution: the n-fold convolution of their empirical distribution."""
    n = len(differences)
    scale = math.lcm(*(d.denominator for d in differences))
    size = 2 * scale * n + 1  # every sum of n draws, each on [-scale, scale], shifted to >= 0
    one = np.bincount([int(d * scale) + scale for d in differences], minlength=size) / n
    total = np.clip(np.fft.irfft(np.fft.rfft(one) ** n, size), 0, None)
    cdf = np.cumsum(total) / total.sum()
    tail = (1 - level) / 2
    low, high = np.searchsorted(cdf, [tail - 1e-9, 1 - tail - 1e-9])
    return float(Fraction(int(low), scale * n) - 1), float(Fraction(int(high), scale * n) - 1)


def trials_to_resolve(trials: int, difference: float, low: float, high: float) -> int | None:
    """Trials per task that would put the interval's end nearer 0 at 0 (module docstring)."""
    if difference == 0:
        return None
    near = low if difference > 0 else high
    return max(1, math.ceil(trials * ((difference - near) / difference) ** 2 - 1e-9))


def check_comparable(a: Evaluation, b: Evaluation, names: tuple[str, str] = NAMES,
                     allowed: tuple[str, ...] = ()) -> None:
    """CannotCompare unless A and B are of one domain and their evaluation contracts agree on
    every term that changes scores (those in `allowed` aside: --allow-different)."""
    ra, rb = a.report, b.report
    na, nb = names
    where = f"({na}: {a.path}; {nb}: {b.path})"
    if ra.domain != rb.domain:
        raise CannotCompare(f"{na} is an evaluation of {ra.domain} and {nb} of {rb.domain} {where}; "
                            "only evaluations of one domain compare")
    refused = [d for d in contract_differences(ra, rb) if d.term not in (*allowed, *NOTED_TERMS)]
    if refused:
        raise CannotCompare(
            f"{ra.domain}: {na} and {nb} were scored under different evaluation contracts {where}; "
            "their numbers do not compare:\n" + differences_text(refused, names)
            + "\nevaluate them alike, or, if you mean to compare them anyway: "
            + " ".join(f"--allow-different {d.term}" for d in refused)
        )


def differences_text(found: list[TermDifference], names: tuple[str, str]) -> str:
    return "\n".join(f"  {d.term}: {names[0]} {d.a}; {names[1]} {d.b}" for d in found)


def allowed_differences(a: EvalReport, b: EvalReport, allowed: tuple[str, ...]) -> list[str]:
    """What --allow-different let through: said beside the numbers, never silent."""
    found = [d for d in contract_differences(a, b) if d.term in allowed]
    return ["compared although the contracts differ (--allow-different):", *differences_text(found, NAMES).splitlines()] \
        if found else []


def noted_differences(a: EvalReport, b: EvalReport, names: tuple[str, str] = NAMES) -> list[str]:
    """The contract terms that differ without changing scores by themselves, as a note."""
    found = contract_differences(a, b, NOTED_TERMS)
    return [f"note: the evaluations differ in {d.term} ({names[0]} {d.a}; {names[1]} {d.b})" for d in found]


def compare(a: Evaluation, b: Evaluation, names: tuple[str, str] = NAMES,
            allowed: tuple[str, ...] = ()) -> Comparison:
    """B against A; CannotCompare when they are not of one domain and contract (check_comparable)."""
    check_comparable(a, b, names, allowed)
    ta, tb = (task_outcomes(read_outcomes(e.path / RESULTS_NAME), e.report.infra_failures_are == COUNTED_AS_WRONG)
              for e in (a, b))
    both = sorted(set(ta) & set(tb))
    if not both:
        raise CannotCompare(f"no task was scored in both evaluations ({names[0]}: {a.path}; {names[1]}: {b.path})")
    differences = [tb[t].rate - ta[t].rate for t in both]
    low, high = bootstrap_interval(differences)
    difference = float(sum(differences) / len(differences))
    trials = (a.report.num_trials, b.report.num_trials)
    return Comparison(
        domain=a.report.domain, split=a.report.split, task_set=a.report.task_set, trials=trials,
        pass1=(_pass1(ta), _pass1(tb)), num_tasks=len(both), difference=difference, low=low, high=high,
        solved_only=(sum(ta[t].solved and not tb[t].solved for t in both),
                     sum(tb[t].solved and not ta[t].solved for t in both)),
        trials_to_resolve=trials_to_resolve(min(trials), difference, low, high),
    )


def _pass1(tasks: dict[str, TaskOutcome]) -> float | None:
    return float(sum(t.rate for t in tasks.values()) / len(tasks)) if tasks else None


def _points(value: float | None, sign: str = "") -> str:
    return "-" if value is None else f"{100 * value:{sign}.1f}"


def interval_text(c: Comparison) -> str:
    return (f"{_points(c.difference, '+')} points, 95% interval {_points(c.low, '+')} to {_points(c.high, '+')} "
            f"(paired bootstrap over {c.num_tasks} tasks)")


def render(c: Comparison, names: tuple[str, str] = NAMES) -> list[str]:
    """One domain's comparison, as the command prints it."""
    a, b = names
    rows = [
        ["pass^1 (%)", f"{a} {_points(c.pass1[0])}   {b} {_points(c.pass1[1])}"],
        [f"{b} − {a}", interval_text(c)],
        ["solved only in", f"{a}: {c.solved_only[0]}   {b}: {c.solved_only[1]}   ({SOLVED})"],
        ["verdict", c.verdict(names)],
        ["to resolve", c.resolve_text()],
    ]
    return [f"{c.domain}/{c.split}, task set {c.task_set.describe()}:", *align(rows)]


def render_versus(c: Comparison, names: tuple[str, str]) -> list[str]:
    """The comparison in two lines, beside another report (mode=eval's, beside the base model)."""
    a, b = names
    return [
        f"{b} − {a}: {interval_text(c)}: {c.verdict(names)}",
        f"  solved only by {a}: {c.solved_only[0]}, only by {b}: {c.solved_only[1]} ({SOLVED}); "
        f"to resolve: {c.resolve_text()}",
    ]


def newest_by_domain(given: str) -> dict[str, Evaluation]:
    """The evaluation `given` names, or the newest of each domain under it."""
    path = Path(given)
    if not path.exists():
        raise CannotCompare(f"{given} does not exist")
    newest: dict[str, tuple[str, Evaluation]] = {}
    for file in metrics_files(path):
        try:
            report = read_eval_report(file)
        except (OSError, ValueError) as error:
            raise CannotCompare(str(error)) from None
        stamp = eval_stamp(file.parent)
        if report.domain not in newest or stamp > newest[report.domain][0]:
            newest[report.domain] = (stamp, Evaluation(file.parent, report))
    if not newest:
        raise CannotCompare(f"{given} holds no finished evaluation (no metrics.json in or under it)")
    return {domain: evaluation for domain, (_, evaluation) in sorted(newest.items())}


def pairs(given_a: str, given_b: str, allowed: tuple[str, ...] = ()) -> list[tuple[Evaluation, Evaluation]]:
    """The evaluations to compare, by domain; CannotCompare before any results file is read."""
    a, b = newest_by_domain(given_a), newest_by_domain(given_b)
    if set(a) != set(b):
        raise CannotCompare(f"A ({given_a}) holds evaluations of {', '.join(a)} and B ({given_b}) of "
                            f"{', '.join(b)}; only evaluations of one domain compare")
    for domain in a:
        check_comparable(a[domain], b[domain], allowed=allowed)
    return [(a[domain], b[domain]) for domain in a]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tau2train-compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", metavar="EVAL_A", help="an evaluation directory, or a directory holding evaluations")
    parser.add_argument("b", metavar="EVAL_B", help="the same, for the other side")
    parser.add_argument("--allow-different", action="append", default=[], metavar="TERM", choices=CONTRACT_TERMS,
                        help="compare although the evaluation contracts differ in TERM (repeatable)")
    args = parser.parse_args(argv)
    allowed = tuple(args.allow_different)
    try:
        found = pairs(args.a, args.b, allowed)
        comparisons = [compare(a, b, allowed=allowed) for a, b in found]
    except CannotCompare as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    for (a, b), comparison in zip(found, comparisons):
        print(f"A: {a.path} (agent {a.report.agent_model})")
        print(f"B: {b.path} (agent {b.report.agent_model})")
        print("\n".join([*render(comparison), *noted_differences(a.report, b.report),
                         *allowed_differences(a.report, b.report, allowed)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
