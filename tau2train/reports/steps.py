"""`tau2train-eval-steps <dir> [...]`: pass^1 per domain against the training step.

Reads every evaluation of a checkpoint found under the directories given (a `-m` sweep over
`eval.checkpoint_step` and domains leaves one per point; step 0 is the base model, step 0's
evaluation of `actor.path`), keeps the newest per (domain, step), and prints one table
(pass^1 ± its standard error, in percent); `pass1_by_step.png` (one line per domain) and
`pass1_by_step.csv` go to the first directory given, or `--output-dir`. Evaluations of
different task sets are refused (exit 2), not set in one table. Reads only JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from tau2train.records.eval_report import EvalReport, read_eval_report
from tau2train.records.files import write_atomic
from tau2train.records.layout import eval_stamp, metrics_files
from tau2train.reports.plots import figure, save_png
from tau2train.reports.tables import align
from tau2train.reports.task_set_labels import MixedTaskSets, check_one_task_set

REPORT_NAME = "pass1_by_step"


def collect(paths: list[Path]) -> dict[str, dict[int, EvalReport]]:
    """{domain: {step: the newest evaluation's report}} of the checkpoint evaluations found;
    MixedTaskSets when they were not all scored on one task set."""
    found: dict[str, dict[int, tuple[str, Path, EvalReport]]] = {}
    for root in paths:
        for file in metrics_files(root):
            try:
                report = read_eval_report(file)
            except (OSError, ValueError):
                continue
            if report.step is None:
                continue
            stamp = eval_stamp(file.parent)
            seen = found.setdefault(report.domain, {}).get(report.step)
            if seen is None or stamp > seen[0]:
                found[report.domain][report.step] = (stamp, file.parent, report)
    check_one_task_set([(path, r) for steps in found.values() for _, path, r in steps.values()])
    return {d: {s: r for s, (_, _, r) in sorted(steps.items())} for d, steps in sorted(found.items())}


def cell(report: EvalReport | None) -> str:
    if report is None:
        return "-"
    value, se = report.pass1, report.pass_hat_1_se
    if value is None:
        return "-"
    return f"{100 * value:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def table(found: dict[str, dict[int, EvalReport]]) -> list[list[str]]:
    steps = sorted({s for by_step in found.values() for s in by_step})
    rows = [["step", *found]]
    for step in steps:
        label = f"{step} (base)" if step == 0 else str(step)
        rows.append([label, *(cell(found[d].get(step)) for d in found)])
    return rows


def write_csv(path: Path, found: dict[str, dict[int, EvalReport]]) -> Path:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["domain", "step", "pass^1", "pass^1_se", "avg_reward", "avg_reward_se", "num_infra_failures",
                "checkpoint"])
    for domain, by_step in found.items():
        for step, r in by_step.items():
            w.writerow([domain, step, r.pass1, r.pass_hat_1_se, r.avg_reward, r.avg_reward_se,
                        r.num_infra_failures, r.checkpoint.path])
    return write_atomic(path, out.getvalue())


def write_plot(path: Path, found: dict[str, dict[int, EvalReport]]) -> Path:
    fig, ax = figure((7, 4.5))
    for domain, by_step in found.items():
        points = [(s, r.pass1, r.pass_hat_1_se) for s, r in by_step.items()]
        points = [(s, 100 * v, 100 * (e or 0.0)) for s, v, e in points if v is not None]
        ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                    marker="o", capsize=3, label=domain)
    ax.set_xlabel("training step (0 = base model)")
    ax.set_ylabel("pass^1 (%)")
    ax.set_title("τ² pass^1 per domain by checkpoint (± standard error)", fontsize=10)
    ax.legend()
    return save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tau2train-eval-steps", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("dirs", nargs="+", type=Path, help="directories holding checkpoint evaluations")
    parser.add_argument("--output-dir", type=Path, help="where the plot and csv go (default: the first dir)")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"error: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        found = collect(args.dirs)
    except MixedTaskSets as error:
        print(f"error: one table is one task set: {error}", file=sys.stderr)
        return 2
    if not found:
        print(f"error: no evaluation of a checkpoint (metrics.json with a checkpoint step) under "
              f"{', '.join(map(str, args.dirs))}; evaluate with eval.checkpoint_step=...", file=sys.stderr)
        return 2
    print("pass^1 (%) ± standard error, by training step:")
    print("\n".join(align(table(found))))
    out = args.output_dir or args.dirs[0]
    plot = write_plot(out / f"{REPORT_NAME}.png", found)
    table_csv = write_csv(out / f"{REPORT_NAME}.csv", found)
    print(f"plot: {plot}\ncsv:  {table_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
