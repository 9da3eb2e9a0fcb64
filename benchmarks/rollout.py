"""Rollout throughput and memory of the τ² workflow, against the upstream approach, same run.

    python benchmarks/rollout.py [--levels 1,16,64,256] [--domain airline]

A scripted zero-latency LLM server (tests/helpers/scripted_llm.py, its own process) plays agent and
user, so what is measured is the workflow's own cost: environment set-up, tau2's
orchestrator, evaluation, trajectory records. Each (approach, concurrency) runs in a fresh
process, so its peak RSS is its own.

  upstream   a fresh environment loaded from tau2's packaged data for every episode
             (econfig.fast_env=false), episodes in asyncio's default executor
             (min(32, CPUs + 4) threads), as AReaL's example does.
  tau2train  the shipped workflow: shared copy-on-access DB (fast_env), a thread per
             concurrent episode.

Per-episode overhead = time `play()` takes minus the orchestrator's conversation time
(tau2's SimulationRun.duration): environment set-up + players + evaluation + records.
Goals: overhead median <= 15 ms and >= 10x below upstream; peak RSS at 256 concurrent
airline episodes <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_GOAL_MS = 15.0
OVERHEAD_RATIO_GOAL = 10.0
RSS_GOAL_MB = 1536.0


def child(approach: str, concurrency: int, episodes: int, url: str, domain: str, split: str) -> dict:
    """Run `episodes` gold-replay episodes, `concurrency` at a time; report what it cost."""
    from tau2train.rollout.episode import split_tasks
    from tau2train.rollout.workflow import Tau2AgentWorkflow
    from tau2train.schemas import EnvConfig

    upstream = approach == "upstream"
    econfig = EnvConfig(domain=domain, user_llm_base_url=url, user_llm="user", fast_env=not upstream)
    with tempfile.TemporaryDirectory() as dump_dir:
        workflow = Tau2AgentWorkflow(
            econfig=econfig,
            dump_dir=dump_dir,
            agent_model="gold",
            max_concurrent_episodes=min(32, (os.cpu_count() or 1) + 4) if upstream else concurrency,
        )
        ids = [task.id for task in split_tasks(domain, split)]
        gate = asyncio.Semaphore(concurrency)
        overheads: list[float] = []

        async def one(i: int) -> float:
            async with gate:
                start = time.perf_counter()
                episode = await workflow.play({"task_id": ids[i % len(ids)], "split": split}, url, "k")
                overheads.append(time.perf_counter() - start - episode.simulation.duration)
                return episode.info.reward

        async def all_episodes():
            return await asyncio.gather(*(one(i) for i in range(episodes)))

        start = time.perf_counter()
        rewards = asyncio.run(all_episodes())
        seconds = time.perf_counter() - start
    return {
        "episodes": episodes,
        "seconds": seconds,
        "episodes_per_s": episodes / seconds,
        "overhead_ms_median": 1000 * statistics.median(overheads),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mean_reward": sum(rewards) / len(rewards),
    }


def start_server() -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "helpers" / "scripted_llm.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    line = server.stdout.readline()  # "serving on <url>" once it listens
    if not line.startswith("serving on "):
        server.kill()
        raise SystemExit(f"scripted server did not start: {line!r}")
    return server, line.split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,16,64,256", help="concurrency levels")
    parser.add_argument("--domain", default="airline")
    parser.add_argument("--split", default="train")
    parser.add_argument("--child", nargs=3, metavar=("APPROACH", "CONCURRENCY", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        approach, concurrency, url = args.child[0], int(args.child[1]), args.child[2]
        print(json.dumps(child(approach, concurrency, max(concurrency, 24), url, args.domain, args.split)))
        return

    server, url = start_server()
    rows = []
    try:
        for level in [int(x) for x in args.levels.split(",")]:
            for approach in ("upstream", "tau2train"):
                out = subprocess.run(
                    [sys.executable, __file__, "--domain", args.domain, "--split", args.split,
                     "--child", approach, str(level), url],
                    check=True, capture_output=True, text=True,
                )
                row = {"approach": approach, "concurrency": level, **json.loads(out.stdout.splitlines()[-1])}
                rows.append(row)
                print(
                    f"{approach:9s} c={level:<4d} {row['episodes']:4d} episodes  "
                    f"{row['episodes_per_s']:7.2f} ep/s  overhead median {row['overhead_ms_median']:8.1f} ms  "
                    f"peak RSS {row['peak_rss_mb']:7.0f} MB  mean reward {row['mean_reward']:.2f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()

    print(f"\n{args.domain}/{args.split}, scripted zero-latency LLM, {os.cpu_count()} CPUs")
    by = {(r["approach"], r["concurrency"]): r for r in rows}
    for level in sorted({r["concurrency"] for r in rows}):
        up, ours = by[("upstream", level)], by[("tau2train", level)]
        print(
            f"c={level:<4d} throughput x{ours['episodes_per_s'] / up['episodes_per_s']:6.1f}   "
            f"overhead {ours['overhead_ms_median']:6.1f} ms vs {up['overhead_ms_median']:7.1f} ms "
            f"(x{up['overhead_ms_median'] / ours['overhead_ms_median']:5.1f} less)   "
            f"peak RSS {ours['peak_rss_mb']:6.0f} MB vs {up['peak_rss_mb']:6.0f} MB"
        )
    ours1, up1 = by.get(("tau2train", 1)), by.get(("upstream", 1))
    if ours1 and up1:
        ratio = up1["overhead_ms_median"] / ours1["overhead_ms_median"]
        met = ours1["overhead_ms_median"] <= OVERHEAD_GOAL_MS and ratio >= OVERHEAD_RATIO_GOAL
        print(f"goal: overhead <= {OVERHEAD_GOAL_MS:.0f} ms and >= {OVERHEAD_RATIO_GOAL:.0f}x below upstream "
              f"(c=1): {ours1['overhead_ms_median']:.1f} ms, {ratio:.1f}x -> {'met' if met else 'NOT met'}")
    top = by.get(("tau2train", 256))
    if top:
        print(f"goal: peak RSS at 256 concurrent <= {RSS_GOAL_MB:.0f} MB: {top['peak_rss_mb']:.0f} MB -> "
              f"{'met' if top['peak_rss_mb'] <= RSS_GOAL_MB else 'NOT met'}")


if __name__ == "__main__":
    main()
