"""`make gpu-check` (tau2train/launch/gpu_check.py) as a user runs it, in a subprocess: the dry run
prints its three stages and the exact commands and starts nothing (any machine, exit 0); on a
machine without a GPU the check answers "no GPU here" at once and exits 1, starting nothing.

The GPU path itself (nvidia-smi, SGLang serving the tiny Qwen3, the AReaL step) needs a GPU node
and is not run here (docs/gpu-cluster.md).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tau2train.launch import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def gpu_check_command(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TAU2TRAIN_CACHE_DIR": str(cache), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "tau2train.launch.gpu_check", *args], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_dry_run_prints_each_stage_and_its_commands_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TAU2TRAIN_CACHE_DIR", str(tmp_path / "cache"))
    workdir = tmp_path / "check"
    done = gpu_check_command("--dry-run", "--workdir", str(workdir), "--port", "30123", cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("tau2train gpu-check (dry run: nothing was started)")
    assert "pinned   torch 2.9.1, CUDA runtime 12.8.90 (driver >= 570.124.06), SGLang 0.5.10.post1" in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("[")] == [
        "[1/3] gpus", "[2/3] sglang", "[3/3] areal"]
    python = sys.executable
    # the GPUs: nvidia-smi's query and torch asked in the environment's interpreter
    assert "      nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader\n" in out
    assert f"      {python} -c 'import importlib.util, json, torch;" in out
    # SGLang: tau2train's server command (config.servers) over the tiny Qwen3's local build
    model = gpu_check.tiny_qwen_path(gpu_check.WIDTH)
    assert str(model).startswith(str(tmp_path / "cache"))
    assert (f"      {python} -m sglang.launch_server --model-path {model} --served-model-name tiny-qwen3-gpu-check "
            f"--tp 1 --dp 1 --tool-call-parser qwen25 --host 127.0.0.1 --port 30123 --attention-backend triton"
            f"   (log: {workdir}/sglang.log)\n") in out
    assert "GET http://127.0.0.1:30123/health until it answers" in out
    assert 'POST http://127.0.0.1:30123/v1/chat/completions {"model": "tiny-qwen3-gpu-check"' in out
    # one AReaL step through tau2train's own command line
    assert (f"      {python} -m tau2train.run experiment=cpu_miniature mode=sft data=areal_tau2 "
            f"data.path={workdir}/sft-data allocation.server=sglang trainer.cpu_only=false cluster.n_gpus_per_node=2 "
            "sft.epochs=1 sft.batch_size=2 saver.freq_epochs=1 saver.freq_steps=null "
            f"cluster.fileroot={workdir}/experiments cluster.name_resolve.nfs_record_root={workdir}/name_resolve "
            f"trial_name=gpucheck   (log: {workdir}/areal_sft.log)\n") in out
    # nothing was started, built or written
    assert not workdir.exists() and not model.exists()


@pytest.mark.skipif(bool(glob.glob("/dev/nvidia[0-9]*") or shutil.which("nvidia-smi")),
                    reason="this machine has an NVIDIA GPU (or nvidia-smi): the no-GPU answer cannot be seen")
def test_without_a_gpu_it_says_so_and_exits_1_starting_nothing(tmp_path):
    workdir = tmp_path / "check"
    done = gpu_check_command("--workdir", str(workdir), cache=tmp_path / "cache")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("no GPU here: no /dev/nvidia<N> device and no nvidia-smi on PATH. "
                                  "make gpu-check is meant for a GPU node")
    assert "Nothing was started." in done.stderr
    assert not workdir.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(("driver", "seen", "reason"), [
    ("535.161.08", {"torch": "2.9.1+cu128", "cuda": "12.8", "gpus": ["H100"], "capability": ["9.0"],
                    "sgl_kernel": True}, "NVIDIA driver 535.161.08 is older than 570.124.06"),
    ("570.124.06", {"torch": "2.5.1+cu121", "cuda": "12.1", "gpus": ["H100"], "capability": ["9.0"],
                    "sgl_kernel": True}, "torch 2.5.1+cu121 is not the pinned 2.9.1"),
    ("570.124.06", {"torch": "2.9.1+cu128", "cuda": "12.8", "gpus": [], "capability": [],
                    "sgl_kernel": True}, "torch sees no GPU"),
    ("570.124.06", {"torch": "2.9.1+cu128", "cuda": "12.8", "gpus": ["H100"], "capability": ["9.0"],
                    "sgl_kernel": False}, "SGLang's CUDA kernels (sglang-kernel) are not installed"),
])
def test_the_gpus_stage_names_what_is_wrong(driver, seen, reason):
    with pytest.raises(gpu_check.StageFailed, match=re.escape(reason)):
        gpu_check.judge_gpus(driver, seen, gpu_check.pinned(), "/shared/venvs/tau2train/bin/python")


def test_the_gpus_stage_passes_a_ready_node():
    seen = {"torch": "2.9.1+cu128", "cuda": "12.8", "gpus": ["NVIDIA H100 80GB HBM3"] * 2,
            "capability": ["9.0"] * 2, "sgl_kernel": True}
    note = gpu_check.judge_gpus("580.65.06", seen, gpu_check.pinned(), sys.executable)
    assert note.startswith("2 GPU(s): NVIDIA H100 80GB HBM3 (compute 9.0), NVIDIA H100 80GB HBM3 (compute 9.0); "
                           "driver 580.65.06 (CUDA 12.8 needs >= 570.124.06)")


def test_each_stage_prints_one_line_and_the_first_failure_ends_the_check(tmp_path, monkeypatch, capsys):
    ran = []

    def stage(name, outcome):
        def run(check):
            ran.append(name)
            if outcome is None:
                raise gpu_check.StageFailed(f"{name} broke (log: {check.workdir}/{name}.log)")
            return outcome
        return gpu_check.Stage(name, "", lambda check: [], run)

    monkeypatch.setattr(gpu_check, "STAGES", [stage("gpus", "2 GPU(s)"), stage("sglang", None), stage("areal", "x")])
    check = gpu_check.Check(tmp_path / "check", 30000, 10.0, 10.0)
    assert gpu_check.run_stages(check) == 1
    assert ran == ["gpus", "sglang"]
    assert capsys.readouterr().out.splitlines() == [
        f"tau2train gpu-check: 3 stages, logs under {tmp_path}/check",
        "[1/3] gpus: ok: 2 GPU(s)",
        f"[2/3] sglang: failed: sglang broke (log: {tmp_path}/check/sglang.log)",
    ]


def test_the_areal_stage_reads_tau2trains_error_or_the_checkpoint_from_the_log(tmp_path):
    log = tmp_path / "areal_sft.log"
    log.write_text("loading\nerror: cluster.n_gpus_per_node=2: the layout needs 2 GPUs on this machine and it has 1\n"
                   "  valid: at most 1 on this machine\n  fix:   check the plan\n")
    with pytest.raises(gpu_check.StageFailed, match=re.escape(
            "exit 2: error: cluster.n_gpus_per_node=2: the layout needs 2 GPUs on this machine and it has 1 (log: ")):
        gpu_check.judge_step(2, log)
    log.write_text("\x1b[32m(AReaL) Train step 1/1 done\x1b[0m\nSFT finished: checkpoint of step 1 at /x/epoch0globalstep1\n")
    assert gpu_check.judge_step(0, log) == f"1 AReaL SFT step(s) trained, checkpoint /x/epoch0globalstep1 (log: {log})"
    log.write_text("Train step 1/1 done\nSFT finished; no model checkpoint under /x (saver.freq_* saved none)\n")
    with pytest.raises(gpu_check.StageFailed, match="finished without a checkpoint"):
        gpu_check.judge_step(0, log)


@pytest.mark.slow
def test_the_sglang_stage_on_tau2trains_cpu_server(tmp_path, monkeypatch):
    """Stage 2's own code (the build, tau2train's server command and health wait, the chat request,
    the server stopped after) with tau2train's CPU server, which speaks SGLang's protocol, in place
    of SGLang: what the GPU node adds is SGLang itself."""
    from tau2train.launch.recipe import free_port

    spec = gpu_check.server_spec
    monkeypatch.setattr(gpu_check, "server_spec", lambda check: dataclasses.replace(
        spec(check), server_module="tau2train.serving.cpu_sglang"))
    check = gpu_check.Check(tmp_path / "check", free_port(), 300.0, 10.0)
    check.workdir.mkdir()
    note = gpu_check.run_sglang(check)
    assert note.startswith(f"served at {check.url} in ") and "one chat completion: '" in note, note
    assert note.endswith(f"(log: {check.workdir}/sglang.log)")
    with pytest.raises(OSError):  # stopped: nothing answers there any more
        urllib.request.urlopen(f"http://127.0.0.1:{check.port}/health", timeout=5)
