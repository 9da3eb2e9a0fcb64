"""data=areal_tau2 at the released size: loading the RL file, and per-episode environment cost on
the rows' own snapshots against today's single-DB fast path, in the same run.

    python benchmarks/areal_tau2.py [--rows 2000] [--episodes 300]

Generates (in a temporary folder) a synthetic AReaL-tau2-data folder of the released size:
2,000 RL rows in the released ratio (airline 1148 : retail 563 : telecom 271), τ²'s own tasks
cycled, evaluation_criteria as JSON strings, and 9 snapshots of real size made by replicating
τ²'s DBs (4 airline, 4 retail, 1 telecom TOML; each replica's one record differs, so they are
distinct files). Then:

* load: tau2train.config.areal_tau2.load (every row parsed, validated as a τ² Task, its
  snapshot checked), time and RSS growth, and the size of AReaL's dataset of those rows, against
  rows that carry their whole Task JSON (the alternative the row format decided against);
* episode overhead: gold-replay episodes (set-up, replay of the gold actions, tau2's
  evaluate_simulation: benchmarks/env_overhead.py's episode) of airline and retail rows, each
  on its snapshot with econfig.fast_env (the row's task parsed from its line, as the worker
  does), alternating with the same task on today's single-DB fast path. Goal: snapshot median
  <= 1.5x today's; rewards of both identical; RSS grows by the snapshots once, not per episode.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from env_overhead import gold_episode  # noqa: E402
from loguru import logger  # noqa: E402

logger.disable("tau2")

from tau2.domains.airline.data_model import FlightDB  # noqa: E402
from tau2.domains.airline.utils import AIRLINE_DB_PATH  # noqa: E402
from tau2.domains.retail.data_model import RetailDB  # noqa: E402
from tau2.domains.retail.utils import RETAIL_DB_PATH  # noqa: E402
from tau2.domains.telecom.utils import TELECOM_DB_PATH  # noqa: E402
from tau2.registry import registry  # noqa: E402

from tau2train.config import areal_tau2  # noqa: E402
from tau2train.records.areal_tau2 import DB_DIR, RL_FILE  # noqa: E402
from tau2train.rollout import fast_env, snapshots  # noqa: E402
from tau2train.rollout.datasets import rows_dataset  # noqa: E402
from tau2train.rollout.episode import row_task  # noqa: E402

RATIO = {"airline": 1148, "retail": 563, "telecom": 271}
SNAPSHOTS = {"airline": 4, "retail": 4, "telecom": 1}
GOAL_RATIO = 1.5


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_snapshots(root: Path) -> dict[str, list[str]]:
    """9 snapshots of real size: τ²'s DBs replicated, one record changed in each replica."""
    folder = root / DB_DIR
    folder.mkdir(parents=True)
    made: dict[str, list[str]] = {}
    for domain, model, path in (("airline", FlightDB, AIRLINE_DB_PATH), ("retail", RetailDB, RETAIL_DB_PATH)):
        db = model.load(path)
        users = db.users
        for i in range(1, SNAPSHOTS[domain] + 1):
            user = users[sorted(users)[i]]  # a different user's name in each replica
            user.name.first_name = f"{user.name.first_name}{i}"
            name = f"{DB_DIR}/tau2_{domain}_new_db_{i}.json"
            (root / name).write_text(db.model_dump_json())
            made.setdefault(domain, []).append(name)
    shutil.copyfile(TELECOM_DB_PATH, folder / "tau2_telecom_new_db_1.toml")
    made["telecom"] = [f"{DB_DIR}/tau2_telecom_new_db_1.toml"]
    return made


def write_rows(root: Path, n_rows: int, made: dict[str, list[str]]) -> None:
    total = sum(RATIO.values())
    counts = {d: round(n_rows * r / total) for d, r in RATIO.items()}
    counts["airline"] += n_rows - sum(counts.values())
    lines = []
    for domain, count in counts.items():
        tasks = registry.get_tasks_loader(domain)(None)
        for i in range(count):
            row = tasks[i % len(tasks)].model_dump(mode="json", exclude_none=True)
            row["evaluation_criteria"] = json.dumps(row["evaluation_criteria"])
            row["db_path"] = made[domain][i % len(made[domain])]
            lines.append(json.dumps(row))
    (root / RL_FILE).write_text("\n".join(lines) + "\n")


def bench_load(root: Path) -> list[dict]:
    before = rss_mb()
    start = time.perf_counter()
    loaded = areal_tau2.load(str(root), None)
    load_s = time.perf_counter() - start
    rows = list(loaded.rows)
    by_ref = rows_dataset(rows)
    with_task = rows_dataset([{**r, "task": json.dumps(row_task(r["data_file"], r["line"]).model_dump(mode="json"))}
                              for r in rows])
    size = (root / RL_FILE).stat().st_size / 2**20
    print(f"load: {len(rows)} rows ({areal_tau2.summary(loaded)})")
    print(f"  {RL_FILE}: {size:.1f} MiB; load + check every row: {load_s:.2f} s; RSS +{rss_mb() - before:.0f} MiB")
    print(f"  AReaL dataset: rows by file+line {by_ref.data.nbytes / 2**20:.2f} MiB "
          f"vs rows carrying the Task JSON {with_task.data.nbytes / 2**20:.2f} MiB")
    start = time.perf_counter()
    for r in rows[:500]:
        row_task(r["data_file"], r["line"])
    print(f"  a worker parsing a row's Task from its line: {(time.perf_counter() - start) / 500 * 1e3:.2f} ms")
    return rows


def bench_episodes(rows: list[dict], episodes: int) -> None:
    playable = [r for r in rows if r["domain"] in ("airline", "retail")]
    count = min(episodes, len(playable))  # spread over the whole file, both domains
    sample = [playable[i * len(playable) // count] for i in range(count)]
    for domain in ("airline", "retail"):
        fast_env.install(domain)  # today's single-DB fast path
    before = rss_mb()
    first: dict[str, float] = {}
    today_ms, snap_ms, mismatches = {"airline": [], "retail": []}, {"airline": [], "retail": []}, 0
    rss_after_first_pass, loaded_at, rss_at = None, None, {}
    for i, row in enumerate(sample):
        domain = row["domain"]
        start = time.perf_counter()
        task = row_task(row["data_file"], row["line"])
        name = snapshots.environment(domain, row["db_path"], fast=True)
        snap_result = gold_episode(name, task)
        ms = (time.perf_counter() - start) * 1e3
        if row["db_path"] not in first:
            first[row["db_path"]] = ms  # the snapshot's one-off load per process
        else:
            snap_ms[domain].append(ms)
        start = time.perf_counter()
        today_result = gold_episode(domain, task)
        today_ms[domain].append((time.perf_counter() - start) * 1e3)
        keys = ("reward", "db_check", "reward_breakdown")
        if [getattr(snap_result, k) for k in keys] != [getattr(today_result, k) for k in keys]:
            mismatches += 1
        if len(first) == 8 and rss_after_first_pass is None:
            rss_after_first_pass, loaded_at = rss_mb(), i
        if loaded_at is not None:  # after the one-off loads: RSS at each third of the episodes left
            left = len(sample) - 1 - loaded_at
            for k in (1, 2, 3):
                if i == loaded_at + k * left // 3:
                    rss_at[k] = (i - loaded_at, rss_mb())
    print(f"episode overhead: {len(sample)} gold-replay episodes (set-up + replay + evaluate_simulation), "
          "snapshot rows with fast_env vs the same task on today's single-DB fast path")
    worst = 0.0
    for domain in ("airline", "retail"):
        snap, today = statistics.median(snap_ms[domain]), statistics.median(today_ms[domain])
        worst = max(worst, snap / today)
        print(f"  {domain}: snapshot median {snap:.1f} ms (p90 {statistics.quantiles(snap_ms[domain], n=10)[-1]:.1f})"
              f" vs today {today:.1f} ms (p90 {statistics.quantiles(today_ms[domain], n=10)[-1]:.1f}):"
              f" ratio {snap / today:.2f}")
    print(f"  one-off per snapshot per process (load + first episode): "
          f"{', '.join(f'{Path(k).name} {v:.0f} ms' for k, v in sorted(first.items()))}")
    print(f"  RSS: +{(rss_after_first_pass or rss_mb()) - before:.0f} MiB once all 8 snapshots were loaded, "
          f"+{rss_mb() - before:.0f} MiB after all episodes")
    if len(rss_at) == 3 and rss_after_first_pass is not None:
        # a per-episode leak grows RSS by the same amount in each third; a warm-up, in the first
        r1, r2, (n3, r3) = rss_at[1][1], rss_at[2][1], rss_at[3]
        print(f"  RSS growth after the loads, per third of the {n3} episodes left: "
              f"{r1 - rss_after_first_pass:+.1f}, {r2 - r1:+.1f}, {r3 - r2:+.1f} MiB")
    print(f"  results identical to today's path: {len(sample) - mismatches}/{len(sample)}")
    print(f"  goal snapshot/today <= {GOAL_RATIO}: {'met' if worst <= GOAL_RATIO else 'NOT met'} (worst {worst:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=300, help="airline + retail episodes of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="areal-tau2-data-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_rows(root, args.rows, write_snapshots(root))
        print(f"generated {args.rows} rows and 9 snapshots in {time.perf_counter() - start:.1f} s "
              f"({sum(p.stat().st_size for p in (root / DB_DIR).iterdir()) / 2**20:.0f} MiB of snapshots)")
        rows = bench_load(root)
        bench_episodes(rows, args.episodes)
    print(f"peak RSS of this process: {peak_mb():.0f} MiB")


if __name__ == "__main__":
    main()
