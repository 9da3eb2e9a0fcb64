"""Does the recipe learn? The miniature recipe (`make run`) with 3 seeds, RL steps as given.

For each seed it prints pass^1 of the SFT and RL checkpoints on the same tasks and trials and
tau2train-compare's verdict of RL against SFT, then the mean reward by RL step. The goal: RL
better than SFT with the 95% interval above 0 in every seed, and the reward rising by step.

    .venv/bin/python benchmarks/learning.py [--seeds 1 2 3] [--steps 16] [-- extra overrides]

Each seed is one `python -m tau2train.run experiment=cpu_miniature seed=N ...` (its stage logs
under ~/.cache/tau2train/runs/tau2-cpu-miniature/learn<seed>_<time>/recipe/). 12 to 18 minutes
a seed on 2 cores (43.5 min for the 3 seeds with 16 steps; with 12 steps RL beat SFT in 2 of 3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RUNS = Path.home() / ".cache" / "tau2train" / "runs" / "tau2-cpu-miniature"


def run_seed(seed: int, steps: int, extra: list[str]) -> dict:
    trial = f"learn{seed}_{time.strftime('%Y%m%d_%H%M%S')}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tau2train.run", "experiment=cpu_miniature", f"seed={seed}",
         f"trial_name={trial}", f"total_train_steps={steps}", *extra],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"seed {seed}: the recipe failed (exit {done.returncode})")
    summary = json.loads((RUNS / trial / "recipe" / "summary.json").read_text())
    summary["minutes"] = (time.monotonic() - started) / 60
    return summary


def row(seed: int, s: dict) -> str:
    p, d = s["pass1"], s["rl_minus_sft"]
    rewards = s["reward_by_step"]
    first, last = (rewards[min(rewards, key=int)], rewards[max(rewards, key=int)]) if rewards else (None, None)
    curve = f"{first:.2f} -> {last:.2f}" if rewards else "-"
    return (f"{seed:>4}  {100 * p['base']:6.1f}  {100 * p['sft']:6.1f}  {100 * p['rl']:6.1f}  "
            f"{100 * d['difference']:+6.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]  "
            f"{d['verdict']:<28}  {curve:<14}  {s['minutes']:5.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=16, help="RL steps (total_train_steps)")
    parser.add_argument("extra", nargs="*", help="more overrides for every seed")
    args = parser.parse_args()
    print("seed  base%   SFT%    RL%    RL-SFT [95% interval]      verdict                       reward/step     min")
    results = {}
    for seed in args.seeds:
        results[seed] = run_seed(seed, args.steps, args.extra)
        print(row(seed, results[seed]), flush=True)
    better = sum(r["rl_minus_sft"]["low"] > 0 for r in results.values())
    minutes = sum(r["minutes"] for r in results.values())
    print(f"RL better than SFT (interval above 0) in {better} of {len(results)} seeds; {minutes:.1f} min in all")
    for seed, r in results.items():
        steps = " ".join(f"{k}:{v:.2f}" for k, v in sorted(r["reward_by_step"].items(), key=lambda kv: int(kv[0])))
        print(f"seed {seed} mean reward by RL step: {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
