"""`make gpu-check` (= `python -m tau2train.launch.gpu_check [--dry-run] [--workdir DIR] [--port N]`):
is this GPU node ready for tau2train? Three stages, one line each (ok, or failed with the reason
and its log); the first failure ends the check with exit status 1.

    gpus    the GPUs torch sees and the NVIDIA driver (nvidia-smi), against the CUDA of the torch
            requirements-gpu.lock pins, and SGLang's CUDA kernels installed
    sglang  the tiny Qwen3 built here (tau2train.serving.tiny_qwen: nothing downloaded), served by
            SGLang with tau2train's own server command and health wait, and one chat completion
    areal   one step of AReaL's SFT trainer on a GPU, through tau2train's own command line
            (experiment=cpu_miniature mode=sft with trainer.cpu_only=false: 2 GPUs, as its layout)

On a machine without a GPU it says so and exits 1, starting nothing. `--dry-run` prints the stages
and the exact commands, starting nothing, on any machine. The GPU path is not run by the tests
(they have no GPU): docs/gpu-cluster.md says what was and was not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tau2train.records.areal_sft import SFT_FILE
from tau2train.serving.tiny_qwen import cache_root, tiny_qwen_dir, tiny_qwen_path

NO_GPU_EXIT_CODE = 1
FAILED_EXIT_CODE = 1
INTERRUPTED_EXIT_CODE = 130
# The tiny Qwen3 served and trained: the miniature recipe's width (head_dim 32)
WIDTH = 128
SERVED_NAME = "tiny-qwen3-gpu-check"
# The tiny model's heads are 32 wide: SGLang's Triton attention kernels size themselves to the head,
# while the FA3 and FlashInfer kernels it picks by default are built for the usual 64 to 256
# (chosen so, not tried on a GPU: docs/gpu-cluster.md)
SGLANG_ARGS = ["--attention-backend", "triton"]
# NVIDIA's CUDA Toolkit release notes (table "CUDA Toolkit and Corresponding Driver Versions"):
# CUDA 12.8 Update 1, the runtime the pinned torch wheel carries (nvidia-cuda-runtime-cu12==12.8.90)
MIN_DRIVER = {"12.8": "570.124.06"}
LOCK = Path(__file__).resolve().parents[2] / "requirements-gpu.lock"
LOCK_NAMES = {"torch": "torch", "sglang": "sglang", "cuda runtime": "nvidia-cuda-runtime-cu12"}
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"]
TORCH_PROBE = (
    'import importlib.util, json, torch; c = torch.cuda; n = c.device_count() if c.is_available() else 0; '
    'print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, '
    '"gpus": [c.get_device_name(i) for i in range(n)], '
    '"capability": ["%d.%d" % c.get_device_capability(i) for i in range(n)], '
    '"sgl_kernel": importlib.util.find_spec("sgl_kernel") is not None}))'
)
# two tiny SFT rows on τ²'s mock domain (the released SFT format: tau2train.records.areal_sft)
SFT_ROWS = [
    {"content": "", "tool_calls": [{"name": "create_task", "arguments": {"user_id": "user_1", "title": "Task"}}]},
    {"content": "Done: the task is created."},
]
# the step's GPUs: the tiny model's layout (allocation=cpu_d1_fsdp_d1: sglang:d1 + fsdp:d1)
STEP_GPUS = 2
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, "temperature": 0}
PROCESS_POLL_S = 1.0


class StageFailed(Exception):
    """A stage failed; the message says why and names its log."""


@dataclasses.dataclass
class Check:
    workdir: Path
    port: int
    server_timeout_s: float
    step_timeout_s: float
    python: str = sys.executable
    gpus: int = 0  # what torch saw (the gpus stage)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"


@dataclasses.dataclass
class Stage:
    name: str
    what: str
    commands: Callable[[Check], list[str]]
    run: Callable[[Check], str]


# --- no GPU here -------------------------------------------------------------------------------


def gpu_evidence() -> str | None:
    """None when this machine shows an NVIDIA GPU (a /dev/nvidia<N> device, or nvidia-smi -L
    listing one); otherwise what was looked for and found missing."""
    if glob.glob("/dev/nvidia[0-9]*"):
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no /dev/nvidia<N> device and no nvidia-smi on PATH"
    listed = subprocess.run([smi, "-L"], check=False, capture_output=True, text=True, timeout=60)
    if listed.returncode == 0 and "GPU" in listed.stdout:
        return None
    answer = (listed.stdout + listed.stderr).strip().splitlines()
    return f"no /dev/nvidia<N> device, and `nvidia-smi -L` lists no GPU ({answer[-1] if answer else 'no output'})"


def no_gpu_message(missing: str) -> str:
    return (f"no GPU here: {missing}. make gpu-check is meant for a GPU node (e.g. srun --gres=gpu:{STEP_GPUS} "
            "--pty make gpu-check); `make gpu-check ARGS=--dry-run` prints what it would run. Nothing was started.")


# --- stage 1: the GPUs and the driver ----------------------------------------------------------


def pinned() -> dict[str, str]:
    """Versions requirements-gpu.lock pins (torch, sglang, the CUDA runtime); {} without the lock."""
    try:
        lines = LOCK.read_text().splitlines()
    except OSError:
        return {}
    found = dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith(" "))
    return {label: found[name].split(";")[0].strip() for label, name in LOCK_NAMES.items() if name in found}


def min_driver(cuda: str | None) -> str | None:
    return MIN_DRIVER.get(".".join((cuda or "").split(".")[:2]))


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def gpus_commands(check: Check) -> list[str]:
    return [shlex.join(NVIDIA_SMI), shlex.join([check.python, "-c", TORCH_PROBE])]


def run_gpus(check: Check) -> str:
    smi = subprocess.run(NVIDIA_SMI, check=False, capture_output=True, text=True, timeout=120)
    if smi.returncode != 0:
        raise StageFailed(f"nvidia-smi exited {smi.returncode}: {(smi.stdout + smi.stderr).strip()[-300:]}")
    rows = [line.split(",") for line in smi.stdout.splitlines() if line.count(",") >= 3]
    if not rows:
        raise StageFailed(f"nvidia-smi listed no GPU: {smi.stdout.strip()[-300:] or 'no output'}")
    driver = rows[0][2].strip()
    probe = subprocess.run([check.python, "-c", TORCH_PROBE], check=False, capture_output=True, text=True,
                           timeout=300)
    if probe.returncode != 0:
        raise StageFailed(f"torch could not be asked for the GPUs: {probe.stderr.strip()[-300:]}")
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    check.gpus = len(seen["gpus"])
    return judge_gpus(driver, seen, pinned(), check.python)


def judge_gpus(driver: str, seen: dict, pins: dict[str, str], python: str) -> str:
    """The stage's verdict on what nvidia-smi and torch said (StageFailed on the first problem)."""
    fix = f"make install-gpu VENV={Path(python).parent.parent}"
    judge_torch(seen, pins, fix)
    needed = min_driver(seen["cuda"])
    if needed and version(driver) < version(needed):
        raise StageFailed(f"NVIDIA driver {driver} is older than {needed}, which CUDA {seen['cuda']} (the "
                          "pinned torch's) needs: update the driver (R570 or newer)")
    if not seen["gpus"]:
        raise StageFailed(f"nvidia-smi sees driver {driver}, but torch sees no GPU (CUDA_VISIBLE_DEVICES="
                          "empty? a GPU job without its --gres/--gpus-per-node?)")
    if not seen["sgl_kernel"]:
        raise StageFailed(f"SGLang's CUDA kernels (sglang-kernel) are not installed for {python}: {fix}")
    names = ", ".join(f"{n} (compute {c})" for n, c in zip(seen["gpus"], seen["capability"]))
    short = "" if len(seen["gpus"]) >= STEP_GPUS else f"; the areal stage needs {STEP_GPUS} GPUs"
    return (f"{len(seen['gpus'])} GPU(s): {names}; driver {driver} (CUDA {seen['cuda']} needs >= {needed or '?'}); "
            f"torch {seen['torch']}{short}")


def judge_torch(seen: dict, pins: dict[str, str], fix: str) -> None:
    """torch and its CUDA are the ones requirements-gpu.lock pins."""
    want_torch, want_cuda = pins.get("torch"), pins.get("cuda runtime")
    if want_torch and seen["torch"].split("+")[0] != want_torch:
        raise StageFailed(f"torch {seen['torch']} is not the pinned {want_torch}: {fix}")
    if seen["cuda"] is None:
        raise StageFailed(f"torch {seen['torch']} is built without CUDA: {fix}")
    if want_cuda and not want_cuda.startswith(seen["cuda"]):
        raise StageFailed(f"torch's CUDA {seen['cuda']} is not the pinned runtime {want_cuda}: {fix}")


# --- stage 2: SGLang serving the tiny Qwen3 ----------------------------------------------------


def server_spec(check: Check):
    from tau2train.schemas import ServerSpec

    return ServerSpec(host="127.0.0.1", port=check.port, chat_template=None, extra_args=list(SGLANG_ARGS),
                      startup_timeout_s=check.server_timeout_s)


def sglang_command(check: Check) -> list[str]:
    from tau2train.config.servers import server_command

    spec = server_spec(check)
    return server_command(spec, str(tiny_qwen_path(WIDTH)), SERVED_NAME, "gpu_check")


def chat_body() -> dict:
    return {"model": SERVED_NAME, **CHAT}


def sglang_commands(check: Check) -> list[str]:
    return [
        f"build the tiny Qwen3 (hidden {WIDTH}) at {tiny_qwen_path(WIDTH)}, unless built (nothing downloaded)",
        shlex.join(sglang_command(check)) + f"   (log: {check.workdir / 'sglang.log'})",
        f"GET http://127.0.0.1:{check.port}/health until it answers (at most {check.server_timeout_s:g} s)",
        f"POST {check.url}chat/completions {json.dumps(chat_body())}",
    ]


def run_sglang(check: Check) -> str:
    from tau2train.user_sim.start import LocalServer, ServerFailed, wait_healthy

    try:
        tiny_qwen_dir(WIDTH)
    except (OSError, ValueError) as error:
        raise StageFailed(f"the tiny Qwen3 could not be built: {error}") from None
    log = check.workdir / "sglang.log"
    server = LocalServer.start(sglang_command(check), log)
    try:
        started = time.monotonic()
        url = wait_healthy(server, check.port, check.server_timeout_s, "SGLang", "--server-timeout")
        answer = chat(url, log)
        return f"served at {url} in {time.monotonic() - started:.0f} s; one chat completion: {answer!r} (log: {log})"
    except ServerFailed as error:
        raise StageFailed(str(error)) from None
    finally:
        server.stop()


def chat(url: str, log: Path) -> str:
    request = urllib.request.Request(f"{url}chat/completions", data=json.dumps(chat_body()).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise StageFailed(f"the chat completion failed: {error} (log: {log})") from None
    try:
        return reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise StageFailed(f"the chat completion's answer has no message: {str(reply)[:300]} (log: {log})") from None


# --- stage 3: one AReaL step through tau2train's command line ----------------------------------


def step_command(check: Check) -> list[str]:
    root = check.workdir
    return [
        check.python, "-m", "tau2train.run", "experiment=cpu_miniature", "mode=sft",
        "data=areal_tau2", f"data.path={root / 'sft-data'}",
        # on the GPUs: AReaL's own worker (no CPU server), tau2train's check of this node's GPUs
        "allocation.server=sglang", "trainer.cpu_only=false", f"cluster.n_gpus_per_node={STEP_GPUS}",
        # one step: one epoch of the rows, all of them in one batch, one checkpoint after it
        "sft.epochs=1", f"sft.batch_size={len(SFT_ROWS)}", "saver.freq_epochs=1", "saver.freq_steps=null",
        f"cluster.fileroot={root / 'experiments'}", f"cluster.name_resolve.nfs_record_root={root / 'name_resolve'}",
        "trial_name=gpucheck",
    ]


def step_commands(check: Check) -> list[str]:
    return [
        f"write {len(SFT_ROWS)} SFT rows (τ² mock domain) to {check.workdir / 'sft-data' / SFT_FILE}",
        shlex.join(step_command(check)) + f"   (log: {check.workdir / 'areal_sft.log'})",
    ]


def write_rows(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    prompt = [{"role": "system", "content": "You are a task-manager agent. Be brief."},
              {"role": "user", "content": "Please create a task for user_1."}]
    lines = [json.dumps({"messages": prompt, "answer": {"role": "assistant", **answer},
                         "metadata": {"source_dialog_id": f"mock_dialog_{n}", "turn_index": 1, "correct": 1}})
             for n, answer in enumerate(SFT_ROWS, start=1)]
    (folder / SFT_FILE).write_text("\n".join(lines) + "\n")


def run_step(check: Check) -> str:
    if check.gpus < STEP_GPUS:
        raise StageFailed(f"needs {STEP_GPUS} GPUs (the tiny model's layout, sglang:d1 + fsdp:d1, which tau2train "
                          f"checks this machine for with trainer.cpu_only=false); torch sees {check.gpus}: "
                          f"run it on a node or job with {STEP_GPUS} or more")
    write_rows(check.workdir / "sft-data")
    log = check.workdir / "areal_sft.log"
    code = run_to_end(step_command(check), log, check.step_timeout_s)
    return judge_step(code, log)


def run_to_end(command: list[str], log: Path, timeout_s: float) -> int:
    """Run `command` (its own process group, output to `log`) to its end; StageFailed past `timeout_s`."""
    from tau2train.user_sim.start import LocalServer

    process = LocalServer.start(command, log)
    deadline = time.monotonic() + timeout_s
    try:
        while process.process.poll() is None:
            if time.monotonic() > deadline:
                raise StageFailed(f"did not finish within {timeout_s:g} s (--step-timeout); stopped (log: {log})")
            time.sleep(PROCESS_POLL_S)
    finally:
        process.stop()
    return process.process.returncode


def failure_line(text: str) -> str:
    """tau2train's own error line (a ConfigError's first), else the log's last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


def judge_step(code: int, log: Path) -> str:
    from tau2train.launch.recipe import SFT_DONE
    from tau2train.reports.areal_log import ANSI, STEP_DONE

    text = ANSI.sub("", log.read_text(errors="replace"))
    if code != 0:
        raise StageFailed(f"exit {code}: {failure_line(text)} (log: {log})")
    done, steps = SFT_DONE.search(text), STEP_DONE.findall(text)
    if not done or not steps:
        raise StageFailed(f"finished without {'a trained step' if not steps else 'a checkpoint'} (log: {log})")
    return f"{len(steps)} AReaL SFT step(s) trained, checkpoint {done.group(1).strip()} (log: {log})"


# --- the check ---------------------------------------------------------------------------------


STAGES = [
    Stage("gpus", "the GPUs torch sees and the NVIDIA driver, against the pinned torch's CUDA",
          gpus_commands, run_gpus),
    Stage("sglang", "the tiny Qwen3 built here, served by SGLang (tau2train's server command and health "
          "wait), one chat completion", sglang_commands, run_sglang),
    Stage("areal", f"one AReaL SFT step of the tiny Qwen3 on the GPU through tau2train's command line "
          f"({STEP_GPUS} GPUs: the tiny layout's)", step_commands, run_step),
]


def dry_run(check: Check) -> None:
    pins = pinned()
    cuda = pins.get("cuda runtime")
    print("tau2train gpu-check (dry run: nothing was started)\n"
          f"  python   {check.python}\n  workdir  {check.workdir}\n"
          f"  pinned   torch {pins.get('torch', '?')}, CUDA runtime {cuda or '?'} (driver >= "
          f"{min_driver(cuda) or '?'}), SGLang {pins.get('sglang', '?')} (requirements-gpu.lock)")
    for n, stage in enumerate(STAGES, start=1):
        print(f"[{n}/{len(STAGES)}] {stage.name}: {stage.what}")
        for line in stage.commands(check):
            print(f"      {line}")


def run_stages(check: Check) -> int:
    print(f"tau2train gpu-check: {len(STAGES)} stages, logs under {check.workdir}", flush=True)
    check.workdir.mkdir(parents=True, exist_ok=True)
    for n, stage in enumerate(STAGES, start=1):
        try:
            note = stage.run(check)
        except StageFailed as error:
            print(f"[{n}/{len(STAGES)}] {stage.name}: failed: {error}", flush=True)
            return FAILED_EXIT_CODE
        print(f"[{n}/{len(STAGES)}] {stage.name}: ok: {note}", flush=True)
    print("gpu-check: every stage ok", flush=True)
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tau2train.launch.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the stages and their commands; start nothing")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where logs, SFT rows and the checkpoint go (default: "
                        "$TAU2TRAIN_CACHE_DIR or ~/.cache/tau2train, gpu-check/run<time>)")
    parser.add_argument("--port", type=int, default=30000, help="the SGLang server's port (default 30000)")
    parser.add_argument("--server-timeout", type=float, default=900.0, help="seconds SGLang may take to answer")
    parser.add_argument("--step-timeout", type=float, default=1800.0, help="seconds the AReaL step may take")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = args.workdir or cache_root() / "gpu-check" / time.strftime("run%Y%m%d_%H%M%S")
    check = Check(workdir.expanduser().resolve(), args.port, args.server_timeout, args.step_timeout)
    if args.dry_run:
        dry_run(check)
        return 0
    missing = gpu_evidence()
    if missing:
        print(no_gpu_message(missing), file=sys.stderr)
        return NO_GPU_EXIT_CODE
    try:
        return run_stages(check)
    except KeyboardInterrupt:  # the stage running was stopped on the way out
        print("gpu-check: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
