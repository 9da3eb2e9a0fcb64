"""`python -m tau2train.reports.sweep <sweep dir>`: how every point of a `-m` sweep is doing.

A sweep leaves one run directory per point, `<sweep dir>/<trial>/`, each with the job's own
record (`job.json`) and its results (train: one RunInfo JSON per episode under `generated/`;
eval: `eval/<...>/metrics.json`). Nothing else keeps state, so this reads those files, asks
Slurm once about the jobs that have not recorded an end, and prints one table; the same
rows go to `sweep_report.csv` and a bar plot of the rewards to `sweep_report.png` in the
directory given. Pointed at a single run directory (one holding `job.json`), it reports
that one run. It reads only JSON, never imports AReaL or tau2, so it answers in a second.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tau2train.records.eval_report import read_eval_report
from tau2train.records.files import write_atomic
from tau2train.records.job import JobRecord, JobState, read_job_record
from tau2train.records.layout import (
    JOB_RECORD_NAME,
    METRICS_NAME,
    eval_root,
    eval_stamp,
    generated_dir,
)
from tau2train.records.overrides import split_override
from tau2train.records.slurm_queue import SLURM_ENDED, slurm_states
from tau2train.reports.plots import figure, save_png
from tau2train.reports.tables import align

REPORT_NAME = "sweep_report"
FINAL_FRACTION = 0.1  # "final reward" = mean over the newest 10% of train episodes
UNREADABLE = "unreadable"  # the state shown for a job.json that is not a job record
NOT_OVERRIDES = ("trial_name", "experiment_name")  # already the row / the directory


class BadDir(Exception):
    """The path given holds no run: one message for the user, exit status 2."""


@dataclass
class Row:
    trial: str
    run_dir: Path
    job: JobRecord
    readable: bool = True  # False: its job.json is not a job record (then `job` is empty)
    state: str = "?"
    note: str = ""
    episodes: str = "-"
    mean: float | None = None
    final: float | None = None
    valid: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)


def run_dirs(path: Path) -> tuple[list[Path], list[str]]:
    """The run directories under `path` (or `path` itself), and the subdirectories skipped."""
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a directory"
        raise BadDir(f"error: {path} {problem}.\n" + _expected())
    if (path / JOB_RECORD_NAME).is_file():
        return [path], []
    children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    runs = [p for p in children if (p / JOB_RECORD_NAME).is_file()]
    if runs:
        return runs, [p.name for p in children if p not in runs]
    nested = sorted({p.parent.parent.name for p in path.glob(f"*/*/{JOB_RECORD_NAME}")})
    hint = ""
    if nested:
        hint = (f"\n  {path} looks like a cluster.fileroot; its experiments: {', '.join(nested)}"
                f"\n  e.g. python -m tau2train.reports.sweep {path / nested[0]}")
    elif children:
        hint = f"\n  its {len(children)} subdirectories have no {JOB_RECORD_NAME} (dry runs write none)"
    raise BadDir(f"error: {path} holds no {JOB_RECORD_NAME}.\n" + _expected() + hint)


def _expected() -> str:
    return (f"  expected: <sweep dir>/<trial>/{JOB_RECORD_NAME} (sweep dir = <cluster.fileroot>/"
            f"<experiment_name>, as the -m submission printed), or a run dir holding {JOB_RECORD_NAME}\n"
            "  fix: point at the experiment directory of a sweep submitted without dry_run=true")


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """{"econfig.turn_discount": "0.9", ...}; Hydra's +/++/~ prefixes dropped."""
    out = {}
    for item in overrides or []:
        key, value = split_override(item)
        if key not in NOT_OVERRIDES:
            out[key] = value or ""
    return out


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def train_results(row: Row) -> None:
    """Mean/final reward of the train split and mean of the valid split, from the episodes:
    tau2's reward (RunInfo.reward), so points trained on different rewards compare.

    Episodes that failed outside the policy (user simulator, timeout, evaluator) are ones
    AReaL discarded: counted apart by cause and left out of the means. Order is by file name,
    which starts with the time.
    """
    train_split, valid_split = row.job.train_split, row.job.valid_split
    train, valid, lost = [], [], Counter()
    files = sorted(generated_dir(row.run_dir).glob("*/*/*.json"), key=lambda p: p.name)
    for path in files:
        info = read_json(path)
        if info is None or "reward" not in info:
            continue
        cause = discarded_because(info)
        if cause:
            lost[cause] += 1
        elif info.get("split") == valid_split and valid_split != train_split:
            valid.append(float(info["reward"]))
        elif train_split is None or info.get("split") == train_split:
            train.append(float(info["reward"]))
    row.episodes = f"{len(train)}" + (f" ({lost_text(lost)})" if lost else "")
    row.mean = mean(train)
    row.final = mean(train[-max(1, math.ceil(len(train) * FINAL_FRACTION)):]) if train else None
    row.valid = mean(valid)


def discarded_because(info: dict) -> str | None:
    """Why training discarded an episode (its record's `failure`), None when it trained;
    records written before `failure` existed: any error."""
    if "failure" in info:
        return info["failure"]
    return "error" if info.get("error") else None


def lost_text(lost: Counter) -> str:
    """e.g. "4 lost: 3 user_sim, 1 timeout" (causes in tau2train.records.episode_failure)."""
    causes = ", ".join(f"{n} {cause}" for cause, n in sorted(lost.items(), key=lambda x: (-x[1], x[0])))
    return f"{sum(lost.values())} lost: {causes}"


def eval_results(row: Row) -> None:
    """avg_reward and pass^1 from the newest finished evaluation (one with metrics.json)."""
    done = [p.parent for p in eval_root(row.run_dir).glob(f"*/{METRICS_NAME}")]
    if not done:
        return
    newest = max(done, key=lambda d: (eval_stamp(d), d.name))
    try:
        report = read_eval_report(newest / METRICS_NAME)
    except (OSError, ValueError):
        row.episodes = "? (unreadable metrics.json)"
        return
    row.episodes = f"{report.num_tasks}x{report.num_trials}"
    if report.num_infra_failures:
        row.episodes += f" ({report.num_infra_failures} err)"
    row.mean = report.avg_reward
    row.final = report.pass1


def last_line(path: str | None) -> str:
    """The last non-empty line of a log: where Slurm and Python put why a job died."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except (OSError, TypeError):
        return ""
    return lines[-1].strip()[:120] if lines else ""


def settle_states(rows: list[Row]) -> str:
    """Each row's state: as recorded once ended, else live from Slurm. Returns a caveat."""
    live = [r for r in rows if not r.job.ended and r.job.slurm_job_id]
    states, why = slurm_states(sorted({str(r.job.slurm_job_id) for r in live}))
    for row in rows:
        job_id = row.job.slurm_job_id
        recorded = row.job.state.value if row.job.state else "?"
        row.state = recorded
        if not row.readable:
            row.state = UNREADABLE
        elif row.job.ended:
            ended(row)
        elif not job_id or states is None:
            row.state = f"{recorded}?"  # a local run, or Slurm can't be asked: as recorded
        elif (slurm := states.get(str(job_id))) and slurm not in SLURM_ENDED:
            row.state = slurm
        elif (again := _reread(row.run_dir)).ended:
            row.job = again  # it recorded its end while Slurm was being asked
            ended(row)
        else:
            log = row.job.stderr
            row.state = "lost"
            row.note = ("ended without recording it" + (f" (Slurm: {slurm})" if slurm else "")
                        + (f"; log: {log}" if log else "; no log recorded"))
            if tail := last_line(log):
                row.note += f"; last line: {tail}"
    if states is None and live:
        return f"Slurm not asked ({why}): states marked '?' are as job.json recorded them"
    return ""


def _reread(run_dir: Path) -> JobRecord:
    try:
        return read_job_record(run_dir)
    except ValueError:
        return JobRecord()


def ended(row: Row) -> None:
    """A failed job's note: its recorded error and where its log is."""
    row.state = row.job.state.value
    if row.job.state is JobState.FAILED:
        error = (row.job.error or "no error recorded").strip().splitlines() or [""]
        log = row.job.stderr
        row.note = error[0][:100] + (f"; log: {log}" if log else "")


def build_rows(dirs: list[Path]) -> list[Row]:
    rows = []
    for run_dir in dirs:
        try:
            row = Row(trial="", run_dir=run_dir, job=read_job_record(run_dir))
        except ValueError as why:
            row = Row(trial="", run_dir=run_dir, job=JobRecord(), readable=False, state=UNREADABLE,
                      note=f"{run_dir / JOB_RECORD_NAME} is not a job record ({why})")
        row.trial = row.job.trial_name or run_dir.name
        row.overrides = parse_overrides(list(row.job.overrides))
        if row.job.reward and row.job.mode != "eval":  # the reward it trained on, chosen or not
            row.overrides["reward"] = row.job.reward
        (eval_results if row.job.mode == "eval" else train_results)(row)
        rows.append(row)
    return sorted(rows, key=lambda r: r.trial)


def run_reward(run_dir: Path) -> float | None:
    """One run's reward as a sweeper optimises it: eval's average reward, training's final."""
    [row] = build_rows([run_dir])
    return row.mean if row.job.mode == "eval" else row.final


def varying_keys(points: list[dict[str, str]]) -> dict[str, str]:
    """{full override key: short column name} for the overrides (parse_overrides) that differ
    between points."""
    keys = list(dict.fromkeys(k for p in points for k in p))  # command-line order
    varying = [k for k in keys if len({p.get(k) for p in points}) > 1]
    short = {}
    for key in varying:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if sum(k.split(".")[-n:] == parts[-n:] for k in varying) == 1:
                break
        short[key] = name
    return short


def headers(rows: list[Row]) -> tuple[str, str, str, str]:
    """Column names that say what the numbers are, train, eval or both."""
    modes = {r.job.mode for r in rows if r.readable}
    if modes == {"eval"}:
        return "tasks x trials", "avg_reward", "pass^1", EVAL_LEGEND
    legend = (f"mean = mean tau2 reward of the train-split episodes (whatever reward= trained them); "
              f"final = mean of the newest {FINAL_FRACTION:.0%} of them (at least 1); "
              "episodes with an error are left out")
    if "eval" in modes:
        return ("episodes|tasks x trials", "mean|avg", "final|pass^1",
                legend + "\neval rows: " + EVAL_LEGEND)
    return "episodes", "mean", "final", legend


EVAL_LEGEND = ("avg_reward and pass^1 from the newest finished evaluation's metrics.json "
               "(failed episodes count as 0)")


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def job_id_cell(row: Row) -> str:
    """A job.json without a Slurm id was a local run."""
    return str(row.job.slurm_job_id or ("-" if not row.readable else "local"))


def table(rows: list[Row], keys: dict[str, str]) -> list[list[str]]:
    episodes, mean_name, final_name, _ = headers(rows)
    with_valid = any(r.valid is not None for r in rows)
    head = ["trial", *keys.values(), "state", "slurm job", episodes, mean_name, final_name]
    head += ["valid"] * with_valid + ["note"]
    body = []
    for r in rows:
        cells = [r.trial, *(r.overrides.get(k, "-") for k in keys), r.state,
                 job_id_cell(r), r.episodes, fmt(r.mean), fmt(r.final)]
        body.append(cells + [fmt(r.valid)] * with_valid + [r.note])
    return [head, *body]


def render(path: Path, rows: list[Row], keys: dict[str, str], caveat: str) -> str:
    grid = table(rows, keys)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    lines = [f"sweep {path}: {len(rows)} job(s) ("
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")",
             headers(rows)[3]]
    if caveat:
        lines.append(caveat)
    lines.append("")
    lines += align(grid, indent="")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[Row], keys: dict[str, str]) -> Path:
    """Full values (full override keys, unrounded rewards) for spreadsheets and pandas."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["trial", *keys, "state", "mode", "slurm_job_id", "episodes", "mean_reward",
                "final_reward", "valid_reward", "note", "stderr", "run_dir"])
    for r in rows:
        w.writerow([r.trial, *(r.overrides.get(k, "") for k in keys), r.state,
                    r.job.mode or "", r.job.slurm_job_id or "", r.episodes,
                    *("" if x is None else x for x in (r.mean, r.final, r.valid)), r.note,
                    r.job.stderr or "", str(r.run_dir)])
    return write_atomic(path, out.getvalue())


def write_plot(path: Path, rows: list[Row]) -> Path:
    """Mean and final reward per point as grouped bars; written whole or not at all."""
    _, mean_name, final_name, _ = headers(rows)
    longer = {"mean": "mean (all train episodes)", "final": f"final (newest {FINAL_FRACTION:.0%})"}
    mean_name, final_name = longer.get(mean_name, mean_name), longer.get(final_name, final_name)
    nan = float("nan")
    xs = range(len(rows))
    fig, ax = figure((max(6.0, 1.0 * len(rows) + 2), 4.5))
    ax.bar([x - 0.2 for x in xs], [nan if r.mean is None else r.mean for r in rows], 0.4,
           label=mean_name)
    ax.bar([x + 0.2 for x in xs], [nan if r.final is None else r.final for r in rows], 0.4,
           label=final_name)
    ax.set_xticks(list(xs), [f"{r.trial}\n({r.state})" for r in rows],
                  rotation=30 if len(rows) > 3 else 0, ha="right" if len(rows) > 3 else "center",
                  fontsize=8)
    ax.set_ylabel("reward")
    ax.set_title(f"{path.parent.name}: reward per point", fontsize=10)
    ax.legend()
    return save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tau2train.reports.sweep",
        description="State and reward of every job of a -m sweep: a table on stdout, "
                    f"{REPORT_NAME}.png and {REPORT_NAME}.csv in the sweep directory.")
    parser.add_argument("sweep_dir", type=Path,
                        help="<cluster.fileroot>/<experiment_name>, or one run directory")
    path = parser.parse_args(argv).sweep_dir.resolve()
    try:
        dirs, skipped = run_dirs(path)
    except BadDir as e:
        print(e, file=sys.stderr)
        return 2
    rows = build_rows(dirs)
    caveat = settle_states(rows)
    keys = varying_keys([r.overrides for r in rows])
    print(render(path, rows, keys, caveat))
    if skipped:
        print(f"\nskipped {len(skipped)} subdirectory(ies) without {JOB_RECORD_NAME}: "
              + ", ".join(skipped))
    try:
        plot = write_plot(path / f"{REPORT_NAME}.png", rows)
        table_csv = write_csv(path / f"{REPORT_NAME}.csv", rows, keys)
        print(f"\nplot: {plot}\ncsv:  {table_csv}")
    except OSError as e:
        print(f"\nnote: plot/csv not written ({e})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
