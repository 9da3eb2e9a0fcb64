"""Running tau2train as a user would, and the overrides most tests share."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass
from pathlib import Path

from helpers import process_state

USER_SIM = "econfig.user_llm_base_url=http://127.0.0.1:8000/v1/"


def slurm_overrides(root: Path) -> list[str]:
    """cluster=slurm with real (test-local) shared directories."""
    return [
        "cluster=slurm",
        f"cluster.fileroot={root}/experiments",
        f"cluster.name_resolve.nfs_record_root={root}/name_resolve",
    ]


def ray_overrides(root: Path, address: str = "ray-head:6379") -> list[str]:
    """cluster=ray with real (test-local) directories, stated shared by every node (the tests'
    hosts share this machine's files)."""
    return [
        "cluster=ray",
        f"ray.address={address}",
        f"cluster.fileroot={root}/experiments",
        f"cluster.name_resolve.nfs_record_root={root}/name_resolve",
        f"ray.shared_paths=[{root}]",
    ]


def cluster_overrides(cluster: str, root: Path) -> list[str]:
    """What a run on `cluster` needs besides the choice (cluster=local: nothing)."""
    return {"slurm": slurm_overrides, "ray": ray_overrides}.get(cluster, lambda root: [])(root)


def require_slurm() -> None:
    """Fail (not skip) the calling test module when no Slurm answers."""
    import pytest

    try:
        up = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except FileNotFoundError:
        up = False
    if not up:
        pytest.fail("no Slurm here: run `sudo bash tests/setup_slurm.sh` first (make test does)", pytrace=False)


def job_state(run_dir: Path) -> str | None:
    """The state a run's job.json records (None before it exists)."""
    path = run_dir / "job.json"
    return json.loads(path.read_text())["state"] if path.exists() else None


def flatten(node, prefix: str = "") -> dict:
    """{'actor.optimizer.lr': 1.7e-05, 'actor.scheduling_spec.0.cpu': 2, ...}"""
    if hasattr(node, "__dataclass_fields__"):
        node = asdict(node)
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(node, list):
        out = {}
        for index, value in enumerate(node):
            out.update(flatten(value, f"{prefix}{index}."))
        return out
    return {prefix[:-1]: getattr(node, "value", node)}


@dataclass(frozen=True)
class Result:
    """What a command left for its user: exit status, standard output and error."""

    returncode: int
    stdout: str
    stderr: str


def exit_status(stop: SystemExit) -> int:
    """The status a process ending with `stop` exits with (sys.exit's rules)."""
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 1


def in_process(*args: str, cwd: Path, env: dict | None = None, main=None) -> Result:
    """An entry point's `main(argv)` (tau2train.run's by default) called in the test process:
    the CLI's own code path without a 20 s interpreter start (importing AReaL), for tests that
    read only its messages, exit status and files. `main` must leave the process as it found
    it (tau2train.launch.process_state): checked here on every call. One real subprocess per
    console script stays (run_cli). Its output is what it wrote to sys.stdout/sys.stderr
    (print, tqdm, handlers made while it ran), as capsys would see it; module-scoped fixtures
    can use it too."""
    import pytest

    if main is None:
        from tau2train.run import main
    out, err = io.StringIO(), io.StringIO()
    before = process_state.snapshot()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.chdir(cwd)
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        try:
            status = main(list(args)) or 0  # some mains return their status
        except SystemExit as stop:
            status = exit_status(stop)
    left = process_state.changed(before, process_state.snapshot())
    assert not left, "main left the process changed:\n" + "\n".join(left)
    return Result(status, out.getvalue(), err.getvalue())


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m tau2train.run ARGS` in a fresh process, as a user types it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tau2train.run", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_for(predicate, what: str, deadline_s: float = 300, explain=lambda: ""):
    """Poll `predicate` until it returns something truthy (a job, a server: they answer when
    they are ready); fail naming `what`, plus `explain()`, after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}{explain()}")
