"""The locked environment can run the AReaL and SGLang code paths a real training run goes
through (the stand-ins elsewhere in the tests would not notice a broken import there).

GPU nodes run this module as their install check (`make install-gpu`, then
`.venv/bin/python -m pytest tests/test_dependencies.py`): nothing here needs a test tool or a GPU."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
USER_SIM = "econfig.user_llm_base_url=http://127.0.0.1:8000/v1/"


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


def test_sglangs_qwen25_parser_turns_a_tool_call_block_into_a_call():
    """The parser the shipped configs name (rollout.agent.tool_call_parser=qwen25), as SGLang runs it."""
    from sglang.srt.entrypoints.openai.protocol import Function, Tool
    from sglang.srt.function_call.function_call_parser import FunctionCallParser

    schema = {"type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]}
    tools = [Tool(type="function", function=Function(name="get_user_details", parameters=schema))]
    text = 'Let me look.\n<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}\n</tool_call>'
    content, calls = FunctionCallParser(tools, "qwen25").parse_non_stream(text)
    assert content == "Let me look."
    assert [(c.name, c.parameters) for c in calls] == [("get_user_details", '{"user_id": "mia_li_3668"}')]


def test_sglang_accepts_the_server_command_areal_builds_for_every_shipped_model(tmp_path):
    """AReaL's SGLangConfig.build_cmd for each model's composed config and layout, parsed by
    SGLang's own server arguments: a flag SGLang lacks or a value it refuses fails here."""
    from sglang.srt.server_args import ServerArgs

    from tau2train.config.compose import compose
    from tau2train.config.overrides import group_options
    from tau2train.launch.modes import checked

    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    for model in group_options("model"):
        job = checked(compose([f"model={model}", "cluster=slurm", USER_SIM, f"cluster.fileroot={tmp_path}",
                               f"cluster.name_resolve.nfs_record_root={tmp_path}/name_resolve"]))
        exp = job.config
        tp = job.layout.rollout.parallel.tp_size
        cmd = exp.sglang.build_cmd(exp.sglang, tp_size=tp, base_gpu_id=0, host="127.0.0.1", port=30000)
        parsed = parser.parse_args(cmd[3:])
        assert (parsed.model_path, parsed.tensor_parallel_size, parsed.context_length) == (
            exp.model.path, tp, exp.sglang.context_length), model


def test_sglang_accepts_the_server_commands_tau2train_builds_for_every_user_simulator():
    """`tau2train-user-sim`'s `sglang.launch_server` command for each user_sim choice (and the
    same builder serves a checkpoint for mode=eval), parsed by SGLang's own server arguments."""
    from sglang.srt.server_args import ServerArgs

    from tau2train.config.compose import compose
    from tau2train.config.overrides import group_options
    from tau2train.config.servers import server_command

    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    for choice in group_options("user_sim"):
        spec = compose([f"user_sim={choice}", USER_SIM]).config.user_sim
        if spec.server_module != "sglang.launch_server":  # the rule-based user: tests/test_rule_based_user.py
            continue
        command = server_command(spec, spec.model_path, spec.served_model_name)
        assert command[1:3] == ["-m", "sglang.launch_server"], command
        parsed = parser.parse_args(command[3:])
        assert (parsed.model_path, parsed.tensor_parallel_size, parsed.data_parallel_size) == (
            spec.model_path, spec.tp, spec.dp), choice
        assert parsed.tool_call_parser == "qwen25" and parsed.served_model_name == spec.served_model_name
