"""Startup cost of a dry run against AReaL's own config loading, measured in the same run.

    python benchmarks/startup.py [runs]        (or: make bench)

Times, as fresh processes, `python -m tau2train.run dry_run=true ...` (compose all groups,
validate, write the AReaL YAML, print the plan) and AReaL's `load_expr_config` on the YAML
that dry run wrote. Both import AReaL (torch, transformers), which dominates; the goal is
a median ratio <= 1.1, i.e. composition adds no noticeable cost on top of that import.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.1
DRY_RUN_ARGS = ["dry_run=true", "model=qwen3_8b", "cluster=slurm", "econfig.user_llm_base_url=http://127.0.0.1:8000/v1/"]
BASELINE = (
    "import sys\n"
    "from areal.api.cli_args import load_expr_config\n"
    "from tau2train.schemas import PPOConfig\n"
    "load_expr_config(['--config', sys.argv[1]], PPOConfig)\n"
)


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline"}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as root:
        dry_run = [sys.executable, "-m", "tau2train.run", *DRY_RUN_ARGS,
                   f"cluster.fileroot={root}/exp", f"cluster.name_resolve.nfs_record_root={root}/nr"]
        cold_env = {**env, "TAU2TRAIN_CACHE_DIR": f"{root}/cache"}
        cold = timed(dry_run, cold_env)  # first run also asks tau2's registry (then cached)
        config = Path(root, "exp", "tau2-qwen3-8b-airline", "trial0", "areal_config.yaml")
        baseline = [sys.executable, "-c", BASELINE, str(config)]
        ours, theirs = [], []
        for _ in range(runs):  # interleaved so drift in machine load hits both alike
            ours.append(timed(dry_run, cold_env))
            theirs.append(timed(baseline, cold_env))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    ratio = ours_median / theirs_median
    print(f"runs per side:                 {runs}")
    print(f"AReaL load_expr_config median: {theirs_median:6.2f} s  (all: {', '.join(f'{t:.2f}' for t in theirs)})")
    print(f"tau2train dry_run median:      {ours_median:6.2f} s  (all: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"first dry_run (tau2 registry not cached yet): {cold:.2f} s")
    print(f"ratio dry_run / load_expr_config: {ratio:.3f}  (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
