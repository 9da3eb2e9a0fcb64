"""Startup costs of the command line against AReaL's own, measured in the same run.

    python benchmarks/startup.py [runs]        (or: make bench BENCH=startup)

Times, as fresh processes, interleaved:
- a typo (`python -m tau2train.run model=qwen3_9b`, answered before AReaL is imported) against
  `import areal`; goal: a median ratio <= 0.15;
- `python -m tau2train.run dry_run=true ...` (compose all groups, validate, write the AReaL
  YAML, print the plan) against AReaL's `load_expr_config` on the YAML that dry run wrote.
  Both import AReaL (torch, transformers), which dominates; goal: a median ratio <= 1.1, i.e.
  composition adds no noticeable cost on top of that import.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DRY_RUN_GOAL = 1.1
TYPO_GOAL = 0.15
TYPO_ARGS = ["model=qwen3_9b"]
DRY_RUN_ARGS = ["dry_run=true", "model=qwen3_8b", "cluster=slurm", "econfig.user_llm_base_url=http://127.0.0.1:8000/v1/"]
BASELINE = (
    "import sys\n"
    "from areal.api.cli_args import load_expr_config\n"
    "from tau2train.schemas import PPOConfig\n"
    "load_expr_config(['--config', sys.argv[1]], PPOConfig)\n"
)


def timed(cmd: list[str], env: dict, status: int = 0) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == status, f"{cmd} exited {done.returncode}: {done.stderr[-2000:]}"
    return elapsed


def report(name: str, ours: list[float], name_theirs: str, theirs: list[float], goal: float) -> None:
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    ratio = ours_median / theirs_median
    print(f"{name_theirs + ' median:':34} {theirs_median:6.2f} s  (all: {', '.join(f'{t:.2f}' for t in theirs)})")
    print(f"{name + ' median:':34} {ours_median:6.2f} s  (all: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"ratio {name} / {name_theirs}: {ratio:.3f}  (goal <= {goal}: {'met' if ratio <= goal else 'NOT met'})")


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
        typo = [sys.executable, "-m", "tau2train.run", *TYPO_ARGS]
        import_areal = [sys.executable, "-c", "import areal"]
        ours, theirs, typos, imports = [], [], [], []
        for _ in range(runs):  # interleaved so drift in machine load hits all alike
            typos.append(timed(typo, cold_env, status=2))
            imports.append(timed(import_areal, cold_env))
            ours.append(timed(dry_run, cold_env))
            theirs.append(timed(baseline, cold_env))
    print(f"runs per side: {runs}")
    report("typo", typos, "import areal", imports, TYPO_GOAL)
    report("dry_run", ours, "load_expr_config", theirs, DRY_RUN_GOAL)
    print(f"first dry_run (tau2 registry not cached yet): {cold:.2f} s")


if __name__ == "__main__":
    main()
