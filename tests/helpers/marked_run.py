"""A `python -m tau2train.run` started as a user starts it, in its own session, with a marker in
its environment that every process it starts inherits (whatever their session or process
group): how the teardown tests find what a run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from helpers.areal_run import processes_with_env

MARKER_ENV = "TAU2TEST_RUN_MARKER"


def start(args: list[str], workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path, str]:
    """`python -m tau2train.run ARGS` in its own session, its output to a file; and its marker."""
    marker = f"{MARKER_ENV}={uuid.uuid4().hex}"
    output = workdir / "run.out"
    with open(output, "w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tau2train.run", *args],
            cwd=workdir,
            env={**env, MARKER_ENV: marker.split("=", 1)[1]},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return popen, output, marker


def stop_leftovers(marker: str) -> None:
    for pid in processes_with_env(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
