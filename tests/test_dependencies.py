"""The locked environment can run the AReaL code paths a real training run goes through
(the stand-ins elsewhere in the tests would not notice a broken import there)."""

from __future__ import annotations

import importlib

from fastapi.testclient import TestClient


def test_areals_proxy_rollout_server_imports_and_answers_with_the_locked_litellm():
    """Every proxy-mode rollout (rollout.agent.mode=inline) starts AReaL's proxy server, which
    imports litellm's anthropic pass-through: litellm 1.108 dropped it, and every rollout died
    at start. With the lock's litellm the module imports and its app answers."""
    module = importlib.import_module("areal.experimental.openai.proxy.proxy_rollout_server")
    response = TestClient(module.app).get("/health")
    assert response.status_code == 200, response.text
