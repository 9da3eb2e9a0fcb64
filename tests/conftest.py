"""Shared set-up: no network, offline wandb, pytest's temporary directories, the scripted LLM
server fixture. Helpers live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import InProcess, in_process, slurm_overrides

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["WANDB_MODE"] = "offline"

# Keep tmp_path out of /tmp: tau2train rightly refuses node-local /tmp as the shared storage
# of a multi-node Slurm layout, and the tests use such layouts. pytest's numbered, locked
# directories under this root keep concurrent sessions apart.
TEMP_ROOT = Path.home() / ".cache" / "tau2train" / "pytest-root"
TEMP_ROOT.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(TEMP_ROOT))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For `make test`'s two workers (pytest-xdist, --dist loadgroup): a module runs whole on one
    worker, so its module-scoped set-ups (an AReaL run, a served fixture) are made once; and
    every test that starts AReaL runs on one worker, one after another: AReaL seeds its port
    choice with the run's seed, so two runs at once could pick the same ports, and two runs'
    memory (~10 GB for the training run) would crowd this 24 GiB machine."""
    for item in items:
        group = "areal" if item.get_closest_marker("areal") else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def llm():
    """The scripted OpenAI-compatible server (tests/helpers/scripted_llm.py), shared by the session."""
    from helpers.scripted_llm import ScriptedLLM

    server = ScriptedLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_user():
    """A user simulator that needs no script (tests/helpers/plain_user.py), for AReaL's runs."""
    from helpers.plain_user import PlainUserLLM

    server = PlainUserLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slurm_root(tmp_path: Path) -> list[str]:
    return slurm_overrides(tmp_path)


@pytest.fixture
def cli() -> InProcess:
    """`cli(*args, cwd=..., env=...)`: tau2train.run.main in this process (helpers/cli.py)."""
    return in_process
