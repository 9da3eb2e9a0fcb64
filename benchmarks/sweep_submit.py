"""Submitting a sweep as one Slurm job array against one submission per point, same run.

    python benchmarks/sweep_submit.py [points] [--submit-only]
    (default 64 points; needs a Slurm: `make slurm` starts one here)

Each point is a short job: `mode=eval` on the mock domain, one trial per task, against the
scripted OpenAI-compatible server (tests/helpers/scripted_llm.py) on 127.0.0.1. Side A is one
`python -m tau2train.run -m cluster=slurm ... seed=range(points)` (one array); side B is what
a user does without sweeps: one `python -m tau2train.run cluster=slurm ... seed=i` per point,
in a loop. Both are timed to "submitted" (the command returned) and to "finished" (every
job's job.json records an end). Goal: the array submits in <= 0.2x the time of the loop.
`--submit-only` submits every job held (`sbatch --hold`), times the submissions alone and
cancels the jobs: on a small machine the jobs' own run time dwarfs everything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.scripted_llm import ScriptedLLM  # noqa: E402

GOAL = 0.2
EXPERIMENT = "tau2-qwen3-1.7b-mock"
ENDED = ("completed", "failed")


def job_args(llm: ScriptedLLM, root: Path) -> list[str]:
    return [
        "mode=eval", "domain=mock", "eval.num_trials=1", "eval.agent_model=gold", "econfig.user_llm=user",
        f"eval.agent_base_url={llm.base_url}", f"econfig.user_llm_base_url={llm.base_url}",
        "tracking=none", "cluster=slurm", f"cluster.fileroot={root}/exp",
        f"cluster.name_resolve.nfs_record_root={root}/nr",
        "slurm.cpus_per_task=1", "slurm.mem_gb=1", "slurm.time_minutes=60",
    ]


def submit(cmd: list[str], env: dict) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"submission failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")


def wait_until_finished(experiment: Path, points: int) -> tuple[int, int]:
    while True:
        states = [json.loads(p.read_text()).get("state") for p in experiment.glob("*/job.json")]
        ended = [s for s in states if s in ENDED]
        if len(ended) == points:
            return ended.count("completed"), ended.count("failed")
        time.sleep(1)  # polling the jobs' own records; Slurm decides when they run


def side(cmds: list[list[str]], env: dict, experiment: Path, points: int,
         submit_only: bool) -> tuple[float, float, int, int]:
    start = time.perf_counter()
    for cmd in cmds:
        submit(cmd, env)
    submitted = time.perf_counter() - start
    if submit_only:
        ids = [json.loads(p.read_text())["slurm_job_id"].split("_")[0] for p in experiment.glob("*/job.json")]
        subprocess.run(["scancel", *sorted(set(ids))], check=True)
        return submitted, float("nan"), 0, 0
    completed, failed = wait_until_finished(experiment, points)
    return submitted, time.perf_counter() - start, completed, failed


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--submit-only"]
    submit_only = "--submit-only" in sys.argv
    points = int(args[0]) if args else 64
    held = ["+hydra.launcher.additional_parameters.hold=true"] if submit_only else []
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline"}
    run = [sys.executable, "-m", "tau2train.run"]
    llm = ScriptedLLM()
    llm.start()
    try:
        with tempfile.TemporaryDirectory(dir=Path.home() / ".cache") as tmp:
            array_root, loop_root = Path(tmp, "array"), Path(tmp, "loop")
            array = side([[*run, "-m", *job_args(llm, array_root), *held, f"seed=range(1,{points + 1})"]],
                         env, array_root / "exp" / EXPERIMENT, points, submit_only)
            loop = side([[*run, *job_args(llm, loop_root), *held, f"seed={i}", f"trial_name=seed{i}"]
                         for i in range(1, points + 1)], env, loop_root / "exp" / EXPERIMENT, points, submit_only)
    finally:
        llm.stop()
    print(f"{points} short mode=eval jobs (mock domain, scripted server) on this machine's Slurm")
    print(f"{'':24}{'submitted':>12}{'all finished':>15}{'completed':>11}{'failed':>8}")
    for name, (submitted, finished, completed, failed) in (("one array (-m)", array), ("one sbatch per point", loop)):
        if submit_only:
            print(f"{name:24}{submitted:>10.1f} s{'(held, cancelled)':>34}")
        else:
            print(f"{name:24}{submitted:>10.1f} s{finished:>13.1f} s{completed:>11}{failed:>8}")
    submit_ratio, finish_ratio = array[0] / loop[0], array[1] / loop[1]
    print(f"ratio submit   array / separate: {submit_ratio:.3f}  (goal <= {GOAL}: "
          f"{'met' if submit_ratio <= GOAL else 'NOT met'})")
    if not submit_only:
        print(f"ratio finished array / separate: {finish_ratio:.3f}")


if __name__ == "__main__":
    main()
