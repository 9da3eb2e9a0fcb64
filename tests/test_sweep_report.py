"""`python -m tau2train.reports.sweep`: what a user sees for a sweep's run directories.

Run directories are built as jobs leave them: job.json as the launcher contract describes,
episodes written by tau2train's own `write_run_info`, metrics.json in `mode=eval`'s shape.
Live states are looked up in the machine's real Slurm.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.cli import Result, in_process

from tau2train.rollout import trajectories
from tau2train.rollout.trajectories import write_run_info
from tau2train.schemas import RunInfo

EXPERIMENT = "tau2-qwen3-1.7b-airline"


def write_job(run_dir: Path, trial: str, overrides: list[str], **fields) -> Path:
    record = {
        "state": "completed", "mode": "train", "experiment_name": EXPERIMENT,
        "trial_name": trial, "overrides": [*overrides, f"trial_name={trial}"],
        "slurm_job_id": None, "stdout": None, "stderr": None,
        "submitted_at": "2025-01-01T10:00:00+00:00", "started_at": "2025-01-01T10:01:00+00:00",
        "ended_at": None, "error": None, "train_split": "train", "valid_split": "test",
    }
    record.update(fields)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "job.json").write_text(json.dumps(record, indent=2))
    return run_dir


def write_episodes(run_dir: Path, split: str, rewards: list[float], start: int = 0,
                   failures: dict[int, str] | None = None, error: str | None = None) -> None:
    """One RunInfo per reward, in this order in time (the file name's time stamp); `failures`:
    the episodes training discarded, by cause; `error`: every episode's (none discarded)."""
    for i, reward in enumerate(rewards):
        stamp = f"20250101-{start + i:06d}"
        with pytest.MonkeyPatch.context() as m:
            m.setattr(trajectories, "time", SimpleNamespace(strftime=lambda fmt, s=stamp: s))
            failure = (failures or {}).get(i)
            info = RunInfo(task_id=f"task_{i % 3}", split=split, reward=reward,
                           error=failure and f"{failure} failed" or error, failure=failure)
            write_run_info(run_dir / "generated", info)


def report(path: Path, env: dict | None = None) -> Result:
    """The command's main in this process (its console script runs for real in
    test_config_reference)."""
    from tau2train.reports.sweep import main

    return in_process(str(path), cwd=Path.cwd(), env=env, main=main)


def rows_of(stdout: str) -> list[dict[str, str]]:
    """The table's rows as {column: cell} (columns are 2+ spaces apart)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    head = re.split(r"\s{2,}", lines[start])
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(dict(zip(head, re.split(r"\s{2,}", line))))
    return rows


@pytest.fixture
def train_sweep(tmp_path: Path) -> Path:
    """Two finished points of a train sweep over two temperatures, and a dry-run leftover."""
    sweep = tmp_path / "experiments" / EXPERIMENT
    common = ["domain=airline", "econfig.user_llm_base_url=http://sim:8000/v1/"]
    ok = write_job(sweep / "temperature0.6_t0.0", "temperature0.6_t0.0",
                   [*common, "gconfig.temperature=0.6", "+econfig.user_llm_args.temperature=0.0"],
                   slurm_job_id="100_0")
    # 20 train episodes, rewards rising at the end; two more that failed outside the policy
    # (AReaL drops them), and one the agent broke (it trains, on reward 0)
    write_episodes(ok, "train", [0.0] * 10 + [0.5] * 9 + [1.0])
    write_episodes(ok, "train", [0.0, 0.0], start=15, failures={0: "user_sim", 1: "timeout"})
    write_episodes(ok, "train", [0.0], start=16, error="AGENT_ERROR: an empty message")
    write_episodes(ok, "test", [1.0, 0.0], start=100)
    failed = write_job(sweep / "temperature1.0_t0.7", "temperature1.0_t0.7",
                       [*common, "gconfig.temperature=1.0", "+econfig.user_llm_args.temperature=0.7"],
                       state="failed", slurm_job_id="100_1", stderr="/logs/100_1_0_log.err",
                       error="torch.OutOfMemoryError: CUDA out of memory\nTraceback (most recent ...")
    write_episodes(failed, "train", [1.0, 1.0, 0.0, 0.0])
    (sweep / "dryrun0").mkdir()  # a dry run's directory: areal_config.yaml, no job.json
    (sweep / "dryrun0" / "areal_config.yaml").write_text("experiment_name: x\n")
    return sweep


def imported_by_the_report(sweep: Path) -> str:
    """The report run in a fresh interpreter: which of AReaL, torch and SGLang it imported."""
    code = ("import sys\n"
            "from tau2train.reports.sweep import main\n"
            "try:\n    main([sys.argv[1]])\nexcept SystemExit as stop:\n    assert not stop.code, stop\n"
            "heavy = {'areal', 'torch', 'sglang'}\n"
            "print('imported:', sorted({m.split('.')[0] for m in sys.modules} & heavy))")
    fresh = subprocess.run([sys.executable, "-c", code, str(sweep)], capture_output=True, text=True, timeout=300,
                           check=False)
    assert fresh.returncode == 0, fresh.stderr
    return fresh.stdout.splitlines()[-1]


def test_train_sweep_table_plot_and_csv(train_sweep: Path):
    result = report(train_sweep)
    assert result.returncode == 0, result.stderr
    # it reads JSON only: AReaL (nor torch, nor SGLang) is never imported
    assert imported_by_the_report(train_sweep) == "imported: []"
    out = result.stdout
    assert out.startswith(f"sweep {train_sweep}: 2 job(s) (1 completed, 1 failed)")
    assert "final = mean of the newest 10% of them (at least 1)" in out
    rows = rows_of(out)
    # the varying overrides, one column each; the shared ones and trial_name are not columns
    assert list(rows[0])[:4] == ["trial", "gconfig.temperature", "user_llm_args.temperature", "state"]
    assert rows[0] == {
        "trial": "temperature0.6_t0.0", "gconfig.temperature": "0.6",
        "user_llm_args.temperature": "0.0", "state": "completed", "slurm job": "100_0",
        "episodes": "21 (2 lost: 1 timeout, 1 user_sim)", "mean": "0.262", "final": "0.667", "valid": "0.500",
    }
    failed = rows[1]
    assert (failed["trial"], failed["state"], failed["slurm job"]) == (
        "temperature1.0_t0.7", "failed", "100_1")
    assert (failed["episodes"], failed["mean"], failed["final"], failed["valid"]) == (
        "4", "0.500", "0.000", "-")
    assert failed["note"] == "torch.OutOfMemoryError: CUDA out of memory; log: /logs/100_1_0_log.err"
    assert "skipped 1 subdirectory(ies) without job.json: dryrun0" in out

    png = train_sweep / "sweep_report.png"
    assert f"plot: {png}" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with open(train_sweep / "sweep_report.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["trial"] for r in table] == ["temperature0.6_t0.0", "temperature1.0_t0.7"]
    first = table[0]
    assert first["gconfig.temperature"] == "0.6" and first["econfig.user_llm_args.temperature"] == "0.0"
    assert float(first["mean_reward"]) == pytest.approx(5.5 / 21)
    assert float(first["final_reward"]) == pytest.approx(2 / 3) and float(first["valid_reward"]) == 0.5
    assert (first["state"], first["mode"], first["slurm_job_id"]) == ("completed", "train", "100_0")
    assert table[1]["stderr"] == "/logs/100_1_0_log.err" and table[1]["valid_reward"] == ""
    assert not [p.name for p in train_sweep.iterdir() if p.name.startswith(".")]  # no temp files left


def test_eval_sweep_reports_the_newest_finished_evaluation(tmp_path: Path):
    sweep = tmp_path / EXPERIMENT
    for trial, split in (("a", "test"), ("b", "train")):
        run = write_job(sweep / trial, trial, [f"eval.split={split}", "eval.num_trials=4"], mode="eval")
        for stamp, avg in (("20250102-090000", 0.6), ("20250101-090000", 0.1)):
            out = run / "eval" / f"airline-{split}-Qwen_Qwen3-8B-{stamp}"
            out.mkdir(parents=True)
            (out / "metrics.json").write_text(json.dumps({
                "domain": "airline", "split": split, "agent_model": "Qwen/Qwen3-8B",
                "num_tasks": 20, "num_trials": 4, "reward_basis": "each task's own reward basis",
                "avg_reward": avg, "pass_hat_k": {"1": avg - 0.05, "2": avg - 0.1},
                "num_infra_failures": 1 if trial == "a" else 0,
                "infra_failures": [{"task_id": "3", "trial": 0, "error": "TimeoutError"}],
            }))
        (run / "eval" / f"airline-{split}-Qwen_Qwen3-8B-20250103-090000").mkdir()  # still running

    result = report(sweep)
    assert "avg_reward and pass^1 from the newest finished evaluation's metrics.json" in result.stdout
    rows = rows_of(result.stdout)
    assert [list(r)[:7] for r in rows[:1]] == [
        ["trial", "split", "state", "slurm job", "tasks x trials", "avg_reward", "pass^1"]]
    seen = [(r["trial"], r["split"], r["tasks x trials"], r["avg_reward"], r["pass^1"]) for r in rows]
    assert seen == [
        ("a", "test", "20x4 (1 err)", "0.600", "0.550"), ("b", "train", "20x4", "0.600", "0.550")]
    assert rows[0]["slurm job"] == "local"


def test_a_local_sweep_is_reported_from_the_records_its_runs_keep(cli, llm, tmp_path: Path):
    """`-m` without cluster=slurm: the points run here one after another, each keeping its
    job.json as a Slurm job does; the report reads the sweep directory they leave."""
    result = cli("-m", "mode=eval", f"eval.agent_base_url={llm.base_url}", "eval.agent_model=gold,wrong",
                 "experiment_name=tau2-agents-airline", f"econfig.user_llm_base_url={llm.base_url}",
                 "econfig.user_llm=user", "eval.num_trials=1", "eval.max_concurrency=20", "tracking=none",
                 f"cluster.fileroot={tmp_path}/exp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "exp" / "tau2-agents-airline"
    out = report(sweep)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"sweep {sweep}: 2 job(s) (2 completed)")
    rows = {r["trial"]: r for r in rows_of(out.stdout)}
    assert sorted(rows) == ["agent_modelgold", "agent_modelwrong"]
    for agent, row in zip(("gold", "wrong"), rows.values()):
        assert (row["agent_model"], row["state"], row["slurm job"], row["tasks x trials"]) == (
            agent, "completed", "local", "20x1")
    assert rows["agent_modelgold"]["avg_reward"] == "1.000" != rows["agent_modelwrong"]["avg_reward"]

    # a run that refuses its input as it starts (no agent answers) leaves no record behind,
    # nor takes the place of the one its run directory holds
    record = (sweep / "agent_modelgold" / "job.json").read_text()
    for fileroot in ("exp", "none"):
        refused = cli("mode=eval", "eval.agent_base_url=http://127.0.0.1:9/v1", "trial_name=agent_modelgold",
                      "experiment_name=tau2-agents-airline", f"econfig.user_llm_base_url={llm.base_url}",
                      "tracking=none", f"cluster.fileroot={tmp_path / fileroot}", cwd=tmp_path)
        assert refused.returncode == 2 and "no server answers there" in refused.stderr
    assert (sweep / "agent_modelgold" / "job.json").read_text() == record
    assert not (tmp_path / "none").exists()


def test_a_single_run_dir_is_a_one_row_report(train_sweep: Path):
    run = train_sweep / "temperature1.0_t0.7"
    result = report(run)
    assert result.returncode == 0, result.stderr
    rows = rows_of(result.stdout)
    assert [(r["trial"], r["state"], r["mean"]) for r in rows] == [
        ("temperature1.0_t0.7", "failed", "0.500")]
    assert "gconfig.temperature" not in rows[0]  # nothing varies in one run
    assert (run / "sweep_report.csv").is_file()


def sbatch(*args: str) -> str:
    return subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", *args, "--wrap", "sleep 60"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def squeue(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T"],
                          check=False, capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.fixture
def slurm_jobs():
    """Real, harmless Slurm jobs, cancelled at teardown: a held 2-task array (PENDING, so
    squeue would print it as <id>_[0-1] without -r) and a job cancelled at once."""
    if shutil.which("sbatch") is None:
        pytest.fail("no Slurm here: run `sudo bash tests/setup_slurm.sh` (make test does)", pytrace=False)
    array = sbatch("--hold", "--array=0-1")
    cancelled = sbatch("--hold")
    try:
        subprocess.run(["scancel", cancelled], check=True, timeout=30)
        for _ in range(100):  # until squeue sees both as they should be (bounded: 10 s)
            if squeue(f"{array}_1") == "PENDING" and squeue(cancelled) == "CANCELLED":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"Slurm never listed jobs {array}, {cancelled}")
        yield {"array": array, "cancelled": cancelled}
    finally:
        subprocess.run(["scancel", array, cancelled], check=False, timeout=30)


@pytest.mark.slurm
def test_unfinished_jobs_are_looked_up_in_slurm(tmp_path: Path, slurm_jobs: dict):
    sweep = tmp_path / EXPERIMENT
    array = slurm_jobs["array"]
    for task, discount in ((0, "0.9"), (1, "1.0")):
        write_job(sweep / f"live{task}", f"live{task}", [f"reward.turn_discount={discount}"],
                  state="submitted", slurm_job_id=f"{array}_{task}")
    log = tmp_path / "logs" / "99999990_3_0_log.err"
    log.parent.mkdir()
    log.write_text("step 10 done\nslurmstepd: error: *** JOB 99999993 ON vm CANCELLED AT "
                   "2025-01-01T12:00:00 DUE TO TIME LIMIT ***\n\n")
    write_job(sweep / "vanished", "vanished", ["reward.turn_discount=1.1"], state="running",
              slurm_job_id="99999990_3", stderr=str(log))
    write_job(sweep / "zcancelled", "zcancelled", ["reward.turn_discount=1.2"], state="running",
              slurm_job_id=slurm_jobs["cancelled"])

    result = report(sweep)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"sweep {sweep}: 4 job(s) (2 PENDING, 2 lost)")
    rows = {r["trial"]: r for r in rows_of(result.stdout)}
    assert [(r["state"], r["slurm job"]) for r in (rows["live0"], rows["live1"])] == [
        ("PENDING", f"{array}_0"), ("PENDING", f"{array}_1")]
    assert rows["vanished"]["state"] == "lost"
    assert rows["vanished"]["note"] == (
        f"ended without recording it; log: {log}; last line: slurmstepd: error: *** JOB 99999993 "
        "ON vm CANCELLED AT 2025-01-01T12:00:00 DUE TO TIME LIMIT ***")
    assert (rows["zcancelled"]["state"], rows["zcancelled"]["note"]) == (
        "lost", "ended without recording it (Slurm: CANCELLED); no log recorded")


@pytest.mark.slurm
def test_a_running_job_slurm_never_heard_of_alone_is_lost(tmp_path: Path):
    if shutil.which("squeue") is None:
        pytest.fail("no Slurm here: run `sudo bash tests/setup_slurm.sh` (make test does)", pytrace=False)
    # one unknown id alone makes squeue exit 1 ("Invalid job id specified")
    write_job(tmp_path / "gone", "gone", [], state="running", slurm_job_id="99999991")
    rows = rows_of(report(tmp_path / "gone").stdout)
    assert (rows[0]["state"], rows[0]["note"]) == (
        "lost", "ended without recording it; no log recorded")


def test_without_squeue_states_are_as_recorded(tmp_path: Path):
    sweep = tmp_path / EXPERIMENT
    write_job(sweep / "r", "r", ["reward.turn_discount=0.9"], state="running", slurm_job_id="12345")
    write_job(sweep / "l", "l", ["reward.turn_discount=1.0"], state="running")  # local run
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = report(sweep, env={"PATH": str(empty_path)})
    assert result.returncode == 0, result.stderr
    assert ("Slurm not asked (squeue not found): states marked '?' are as job.json recorded them"
            in result.stdout)
    assert [(r["trial"], r["state"], r["slurm job"]) for r in rows_of(result.stdout)] == [
        ("l", "running?", "local"), ("r", "running?", "12345")]


def test_records_of_other_versions_read_and_a_broken_one_is_a_row_saying_so(tmp_path: Path):
    """job.json is read as a typed record: an older one (keys missing) and a newer one (keys
    this version does not know) still read; one that is not a record is a row that says why."""
    sweep = tmp_path / EXPERIMENT
    old = write_job(sweep / "old", "old", ["reward.turn_discount=0.9"])
    record = json.loads((old / "job.json").read_text())
    for key in ("stdout", "stderr", "submitted_at", "started_at", "ended_at", "error"):
        del record[key]
    (old / "job.json").write_text(json.dumps(record))
    write_job(sweep / "new", "new", ["reward.turn_discount=1.0"], gpu_hours=3.5, state="failed",
              error="RuntimeError: out of memory\ntraceback")
    write_job(sweep / "odd", "odd", ["reward.turn_discount=0.5"], state="exploded")
    (sweep / "torn").mkdir()
    (sweep / "torn" / "job.json").write_text('{"state": "runn')
    result = report(sweep, env={"PATH": ""})  # no squeue: nothing here is in Slurm anyway
    assert result.returncode == 0, result.stderr
    rows = {r["trial"]: (r["state"], r["slurm job"], r.get("note", "")) for r in rows_of(result.stdout)}
    assert rows == {
        "old": ("completed", "local", ""),
        "new": ("failed", "local", "RuntimeError: out of memory"),
        "odd": ("unreadable", "-",
                f"{sweep / 'odd' / 'job.json'} is not a job record ('exploded' is not a valid JobState)"),
        "torn": ("unreadable", "-",
                 f"{sweep / 'torn' / 'job.json'} is not a job record (not JSON (Unterminated string starting at))"),
    }


def test_a_directory_without_runs_exits_2_with_one_message(tmp_path: Path):
    fileroot = tmp_path / "experiments"
    write_job(fileroot / EXPERIMENT / "trial0", "trial0", [])
    (tmp_path / "empty").mkdir()
    for path, says in (
        (tmp_path / "empty", f"error: {tmp_path / 'empty'} holds no job.json."),
        (tmp_path / "nope", f"error: {tmp_path / 'nope'} does not exist."),
        (fileroot, f"looks like a cluster.fileroot; its experiments: {EXPERIMENT}"),
    ):
        result = report(path)
        assert result.returncode == 2
        assert result.stdout == ""
        assert says in result.stderr
        assert "expected: <sweep dir>/<trial>/job.json" in result.stderr
        assert not list(tmp_path.glob("**/sweep_report.*"))
