"""The locked environment can run the AReaL code paths a real training run goes through
(the stand-ins elsewhere in the tests would not notice a broken import there)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]


def test_areals_proxy_rollout_server_imports_and_answers_with_the_locked_litellm():
    """Every proxy-mode rollout (rollout.agent.mode=inline) starts AReaL's proxy server, which
    imports litellm's anthropic pass-through: litellm 1.108 dropped it, and every rollout died
    at start. With the lock's litellm the module imports and its app answers."""
    module = importlib.import_module("areal.experimental.openai.proxy.proxy_rollout_server")
    response = TestClient(module.app).get("/health")
    assert response.status_code == 200, response.text


def test_hydras_plugin_scan_loads_our_launcher_in_a_fresh_interpreter():
    """Every Hydra app scans the hydra_plugins namespace it can see on its first config load
    (our Slurm launcher: in a regular install, or from the repository's root), and runs each
    module without entering it in sys.modules: a dataclass with string annotations failed
    there, and with it AReaL's own load_expr_config. Nothing of tau2train is imported first."""
    code = (
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.launcher import Launcher\n"
        "print(sorted(p.__module__ for p in Plugins.instance().discover(Launcher)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hydra_plugins.tau2train_slurm_launcher.launcher" in done.stdout
