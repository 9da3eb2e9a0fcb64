"""The user-simulator server: its chat template, `tau2train-user-sim` locally
and on the real local Slurm (the scripted server stands in for SGLang), and how a following
`python -m tau2train.run` finds it without being told the URL."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers.cli import Result, in_process, slurm_overrides, wait_for
from transformers.utils.chat_template_utils import render_jinja_template

# The server's module loads AReaL, whose modules swap logging's root as they load: loaded
# here, so that in_process's check of what a call changed sees only what the call did.
import tau2train.user_sim.serve  # noqa: F401
from tau2train.config.endpoints import this_host_name
from tau2train.config.errors import BAD_INPUT_EXIT_CODE
from tau2train.user_sim.command import main as serve_main

TESTS = Path(__file__).resolve().parent
TEMPLATE = TESTS.parent / "tau2train" / "chat_templates" / "qwen_nonthinking.jinja"
RECORD_NAME = "self-hosted-Qwen2.5-72B.json"
SECRET = "sk-user-sim-secret-0123456789"
# Bounded waits: the scripted server imports tau2 (seconds); Slurm adds its scheduling.
DEADLINE_S = 180.0


# -- the chat template ----------------------------------------------------------------------

TOOLS = [{
    "type": "function",
    "function": {
        "name": "toggle_airplane_mode",
        "description": "Turn airplane mode on or off.",
        "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
    },
}]
CONVERSATION = [
    {"role": "system", "content": "You are a customer. <scenario>No signal.</scenario>"},
    {"role": "user", "content": "Hi! How can I help you today?"},
    {"role": "assistant", "content": "<think>they want the issue</think>\nMy phone has no signal."},
    {"role": "user", "content": "Please turn airplane mode off, then check again."},
    {"role": "assistant", "content": None, "tool_calls": [
        # OpenAI clients send arguments as JSON text; SGLang may hand the template a mapping.
        {"id": "c1", "type": "function",
         "function": {"name": "toggle_airplane_mode", "arguments": '{"on": false}'}},
        {"id": "c2", "type": "function",
         "function": {"name": "toggle_airplane_mode", "arguments": {"on": True}}},
    ]},
    {"role": "tool", "tool_call_id": "c1", "content": "Airplane mode is off."},
    {"role": "tool", "tool_call_id": "c2", "content": "Airplane mode is on."},
]


def render(messages, tools=None) -> str:
    """The template rendered by transformers' own renderer (what SGLang's apply_chat_template
    runs), without a tokenizer."""
    (text,), _ = render_jinja_template(
        [messages], tools=tools, chat_template=TEMPLATE.read_text(), add_generation_prompt=True
    )
    return text


def test_chat_template_renders_tools_and_tool_calls_and_never_thinks():
    text = render(CONVERSATION, TOOLS)

    assert text.startswith("<|im_start|>system\nYou are a customer. <scenario>No signal.</scenario>")
    tools = re.search(r"<tools>\n(.*)\n</tools>", text, re.S).group(1)
    assert [json.loads(line) for line in tools.splitlines()] == TOOLS
    # tool calls in the <tool_call> JSON blocks SGLang's qwen25 parser reads back
    system, conversation = text.split("<|im_end|>", 1)
    assert "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>" in system
    calls = [json.loads(c) for c in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", conversation, re.S)]
    assert calls == [
        {"name": "toggle_airplane_mode", "arguments": {"on": False}},
        {"name": "toggle_airplane_mode", "arguments": {"on": True}},
    ]
    # both tool results come back in one user turn
    assert ("<|im_start|>user\n<tool_response>\nAirplane mode is off.\n</tool_response>\n"
            "<tool_response>\nAirplane mode is on.\n</tool_response><|im_end|>\n") in text
    assert "<|im_start|>assistant\nMy phone has no signal.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert "<think>" not in text and "</think>" not in text


def test_chat_template_without_tools_or_system_prompt():
    text = render([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )


# -- dry runs and bad input (in this process: what the command prints) -------------------------

def serve(capsys, *args: str) -> tuple[int, str, str]:
    try:
        serve_main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_shows_the_sglang_command(capsys, tmp_path):
    code, out, _ = serve(capsys, "dry_run=true", f"cluster.fileroot={tmp_path}/exp")
    assert code == 0
    assert "nothing was started or submitted" in out
    command = next(line.strip() for line in out.splitlines() if " -m sglang.launch_server " in line)
    assert (
        "--model-path Qwen/Qwen2.5-72B-Instruct --served-model-name self-hosted-Qwen2.5-72B "
        "--tp 4 --dp 2 --tool-call-parser qwen25 --chat-template "
    ) in command
    template = command.split("--chat-template ", 1)[1].split()[0]
    assert Path(template).name == "qwen_nonthinking.jinja" and Path(template).is_file()
    assert command.endswith("--host 0.0.0.0 --port 8000")
    assert f"records the URL in {tmp_path}/exp/user_sim/{RECORD_NAME}" in out
    assert not (tmp_path / "exp").exists()


def test_slurm_dry_run_shows_the_server_job(capsys, tmp_path):
    code, out, _ = serve(capsys, "dry_run=true", *slurm_overrides(tmp_path), "slurm.partition=gpu",
                         "slurm.account=lab", "user_sim.extra_args=[--mem-fraction-static,'0.85']")
    assert code == 0
    assert "a Slurm job submitted through submitit" in out
    for row in ("slurm_partition  gpu", "slurm_account    lab", "gpus_per_node    8",
                "mem_gb           256", "timeout_min      4320", f"logs             {tmp_path}/experiments/user_sim/logs/<job id>/"):
        assert row in out, row
    assert "--port 8000 --mem-fraction-static 0.85" in out
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("args,key,words", [
    (["user_sim=qwen72b"], "user_sim", ["no such user_sim choice", "qwen2_5_72b, qwen2_5_7b"]),
    (["user_sim.tp=8"], "user_sim.gpus", ["16 GPUs, not 8"]),
    (["user_sim.tpp=8"], "user_sim.tpp", ["has no 'tpp'", "did you mean 'tp'"]),
    (["user_sim.port=70000"], "user_sim.port", ["must lie in [1, 65535]", "change user_sim.port"]),
    (["user_sim.slurm.mem_gb=0"], "user_sim.slurm.mem_gb", ["must be at least 1"]),
    (["user_sim.startup_timeout_s=0"], "user_sim.startup_timeout_s", ["must be greater than 0"]),
    (["user_sim.chat_template=mine.jinja"], "user_sim.chat_template", ["qwen_nonthinking.jinja"]),
    (["cluster=slurm"], "user_sim.record_file", ["is a placeholder", "cluster.fileroot="]),
])
def test_bad_input_gets_one_clear_message(capsys, args, key, words):
    code, out, err = serve(capsys, "dry_run=true", *args)
    assert code == BAD_INPUT_EXIT_CODE
    assert err.startswith(f"error: {key}="), err
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"
    assert out == ""


# -- live servers ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env() -> dict:
    """The scripted server importable as `python -m helpers.scripted_llm`; secrets in the environment
    that must never reach the record."""
    return {**os.environ, "PYTHONPATH": str(TESTS), "USER_LLM_API_KEY": SECRET, "OPENAI_API_KEY": SECRET}


def serve_in_process(*args: str, cwd: Path) -> Result:
    """`tau2train-user-sim ARGS`' main in this process, in serve_env() (its console script runs
    for real in test_config_reference; the server itself is a process of its own)."""
    from tau2train.user_sim.command import main

    return in_process(*args, cwd=cwd, env=serve_env(), main=main)


def scripted(fileroot: Path, port: int) -> list[str]:
    return [
        f"cluster.fileroot={fileroot}", "user_sim.server_module=helpers.scripted_llm",
        f"user_sim.port={port}", "user_sim.startup_timeout_s=150",
    ]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.removesuffix("/v1/") + "/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


# cluster -> (its overrides, the host the record names: loopback here; this machine's name where
# the workers run on other machines, as cluster=ray's do)
SERVED_HERE = {
    "local": (lambda root: [], lambda: "127.0.0.1"),
    "ray": (lambda root: ["cluster=ray", "ray.address=ray-head:6379", f"ray.shared_paths=[{root}]",
                          f"cluster.name_resolve.nfs_record_root={root}/nr"], this_host_name),
}


@pytest.mark.slow
@pytest.mark.parametrize("cluster", list(SERVED_HERE))
def test_local_server_is_recorded_and_found_by_the_next_run(cli, tmp_path, cluster):
    fileroot, port = tmp_path / "exp", free_port()
    record_file = fileroot / "user_sim" / RECORD_NAME
    overrides, host = SERVED_HERE[cluster][0](tmp_path), SERVED_HERE[cluster][1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tau2train.user_sim", *scripted(fileroot, port), *overrides],
        cwd=tmp_path, env=serve_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(lambda: record_file.exists() or process.poll() is not None, "the record", DEADLINE_S)
        assert process.poll() is None, process.communicate()
        record = json.loads(record_file.read_text())
        url = f"http://{host()}:{port}/v1/"
        assert record["url"] == url and record["launcher"] == "local" and record["slurm_job_id"] is None
        assert Path(record["logs"][0]).is_file()
        assert SECRET not in record_file.read_text()
        assert answers(url)

        plan = cli("dry_run=true", f"cluster.fileroot={fileroot}", *overrides, cwd=tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert re.search(rf"user sim\s+openai/self-hosted-Qwen2.5-72B\s+{re.escape(url)}", plan.stdout)

        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"user-sim server 'self-hosted-Qwen2.5-72B' is up at {url}" in out
    assert f"recorded in {record_file}; Ctrl-C stops it" in out
    assert "stopping the user-sim server" in out
    assert not record_file.exists()
    assert not answers(url)


@pytest.mark.slow
def test_a_server_that_exits_at_once_is_a_clear_error_and_leaves_no_record(tmp_path):
    fileroot = tmp_path / "exp"
    result = serve_in_process(*scripted(fileroot, free_port()), "user_sim.server_module=no_such_server",
                              cwd=tmp_path)
    assert result.returncode == 1
    log = next((fileroot / "user_sim" / "logs").glob("self-hosted-Qwen2.5-72B-*.log"))
    assert result.stderr.startswith(
        f"error: the user-sim server exited with status 1 before answering GET /health; see its log {log}"
    ), result.stderr
    assert "No module named no_such_server" in result.stderr  # the log's last lines
    assert not (fileroot / "user_sim" / RECORD_NAME).exists()


SLURM_TEST_JOB = [  # the test Slurm has 2 CPUs, little memory and no GPUs to hand out
    "user_sim.slurm.cpus_per_task=1", "user_sim.slurm.mem_gb=1", "user_sim.slurm.gpus_per_node=0",
]


@pytest.fixture(scope="module")
def slurm():
    """The one-node Slurm of tests/setup_slurm.sh, started if it is not up."""
    state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if state.returncode != 0 or not re.search(r"idle|mix|alloc", state.stdout):
        subprocess.run(["bash", str(TESTS / "setup_slurm.sh")], check=True, timeout=300)


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_server_is_submitted_recorded_and_stopped_by_scancel(cli, tmp_path, slurm):
    port, overrides = free_port(), slurm_overrides(tmp_path)
    fileroot = Path(overrides[1].split("=", 1)[1])
    record_file = fileroot / "user_sim" / RECORD_NAME
    job_id = None
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tau2train.user_sim", *overrides, *scripted(fileroot, port),
             *SLURM_TEST_JOB],
            cwd=tmp_path, env=serve_env(), capture_output=True, text=True, timeout=300,
        )
        submitted = re.search(r"submitted Slurm job (\d+)", result.stdout)
        job_id = submitted and submitted.group(1)
        assert result.returncode == 0, result.stdout + result.stderr
        record = json.loads(record_file.read_text())
        assert record["slurm_job_id"] == job_id and record["launcher"] == "slurm"
        url = record["url"]
        assert url == f"http://{socket.gethostname()}:{port}/v1/"
        assert f"is up at {url} (Slurm job {job_id})" in result.stdout
        assert f"stop: scancel {job_id}" in result.stdout
        assert f"log:  {fileroot}/user_sim/logs/{job_id}/server.log" in result.stdout
        assert SECRET not in record_file.read_text()
        assert answers(url)
        squeue = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
        assert squeue.stdout.strip() == "RUNNING"

        plan = cli("dry_run=true", *overrides, cwd=tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert re.search(rf"user sim\s+openai/self-hosted-Qwen2.5-72B\s+{re.escape(url)}", plan.stdout)
    finally:
        if job_id:
            subprocess.run(["scancel", job_id], check=True)
    # the job removes its own record when it is cancelled
    wait_for(lambda: not record_file.exists(), "the cancelled job to remove its record", 60)
    wait_for(lambda: not answers(url), "the cancelled server to stop", 60)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_slurm_server_that_exits_at_once_is_a_clear_error_and_leaves_no_record(tmp_path, slurm):
    overrides = slurm_overrides(tmp_path)
    fileroot = Path(overrides[1].split("=", 1)[1])
    result = serve_in_process(*overrides, *scripted(fileroot, free_port()), *SLURM_TEST_JOB,
                              "user_sim.server_module=no_such_server", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    job_id = re.search(r"submitted Slurm job (\d+)", result.stdout).group(1)
    log = fileroot / "user_sim" / "logs" / job_id / "server.log"
    assert result.stderr.startswith(
        f"error: the user-sim server Slurm job {job_id} ended before answering GET /health; see its log {log}"
    ), result.stderr
    assert "No module named no_such_server" in result.stderr
    assert not (fileroot / "user_sim" / RECORD_NAME).exists()


def test_without_a_recorded_server_the_run_says_how_to_start_one(tmp_path):
    from tau2train.config.compose import compose
    from tau2train.config.errors import ConfigError
    from tau2train.launch.modes import checked

    with pytest.raises(ConfigError) as caught:
        checked(compose(["dry_run=true", f"cluster.fileroot={tmp_path}"]))
    message = str(caught.value)
    assert caught.value.key == "econfig.user_llm_base_url"
    assert f"no running server is recorded in {tmp_path}/user_sim/{RECORD_NAME}" in message
    assert "tau2train-user-sim" in message
    assert "econfig.user_llm_base_url=http://<host>:<port>/v1/" in message


def test_a_second_server_for_a_recorded_healthy_one_is_refused(capsys, tmp_path, llm):
    from tau2train.records.user_sim import write_record

    record_file = tmp_path / "user_sim" / RECORD_NAME
    write_record(record_file, {"url": llm.base_url + "/", "slurm_job_id": "4242"})
    code, _, err = serve(capsys, *scripted(tmp_path, free_port()))
    assert code == 1
    assert err.startswith(
        f"error: a user-sim server is already recorded in {record_file} and answers at {llm.base_url}/"
    ), err
    assert "scancel 4242" in err
    assert json.loads(record_file.read_text())["slurm_job_id"] == "4242"


def test_a_run_on_the_record_of_a_user_sim_server_that_is_gone_is_refused(cli, tmp_path):
    """A record left by a server that died without removing it (killed hard) is
    found before the run starts, with one message; a live server's record is used."""
    from tau2train.records.user_sim import write_record

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record_file = tmp_path / "exp" / "user_sim" / RECORD_NAME
    url = "http://127.0.0.1:9/v1"
    record = {"url": url, "host": "127.0.0.1", "port": 9, "launcher": "local", "pid": dead.pid}
    write_record(record_file, record)
    stand_in = ["trainer._target_=helpers.recording_trainer.RecordingTrainer", "trainer.cpu_only=true",
                f"cluster.fileroot={tmp_path}/exp"]
    env = {"PYTHONPATH": str(TESTS)}
    result = cli(*stand_in, cwd=tmp_path, env=env)
    assert result.returncode == BAD_INPUT_EXIT_CODE
    assert result.stderr.strip().splitlines() == [
        f"error: econfig.user_llm_base_url={url!r}: taken from the user-sim record {record_file}, whose "
        f"server is gone (its process {dead.pid} on this machine has exited)",
        "  valid: the URL of a running user-simulator server",
        "  fix:   start the server again with `tau2train-user-sim` (it replaces the stale record), "
        f"or delete {record_file} and set econfig.user_llm_base_url=http://<host>:<port>/v1/",
    ]
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["user_sim"]  # nothing written
    # the same record, owned by a live process (this one), is taken as it is
    write_record(record_file, {**record, "pid": os.getpid()})
    result = cli(*stand_in, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
