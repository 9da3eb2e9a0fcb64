"""What the tests that run AReaL's real trainer on CPU share: the command line of a tiny GRPO
run on τ²'s mock domain, the environment its processes need, and readers of what AReaL and
the test instrumentation (helpers/cpu_rollout_worker.py) leave behind.

The policy's completions are forced (TAU2TEST_FORCED_COMPLETIONS; the CPU server still reports
the model's own log-probabilities of them) by the prompt: each episode's first completion is
M, a call to create_task without its arguments (a format penalty, and the episode goes on),
and the next T, a plain reply (the user then ends the chat). So each episode is [M, T]:
completion rewards [R - PENALTY, R], R being tau2's reward for the task, whatever the order
the episodes run in and whichever of them fail.

MIXED_FORCING (tests/test_areal_training.py) makes the two episodes of a group differ: one is
[G, T], G being create_task_1's gold call (well formed: no penalty), the other [M, T]; so
create_task_1's group scores 1 and 0 (completion rewards [1, 1] and [-PENALTY, 0]), and a task
G does not solve 0 and 0 with different rows ([0, 0] and [-PENALTY, 0]). The user who says what
it wants (the module's TaskUser) lets the forcing tell create_task_1_nl_eval (solved only
without G) from the other create tasks: both its episodes are [M, T], a group that solves it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from helpers.cpu_rollout_worker import (
    FILTER_LOG_ENV,
    FORCED_ENV,
    KEEP_WEIGHTS_ENV,
    SERVER_LOG_ENV,
    TRAIN_LOG_ENV,
)
from tau2train.reports.areal_log import ANSI, step_stats  # noqa: F401 (the tests read them here)

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO = TESTS_DIR.parent

PENALTY = 0.5  # reward.format_penalty: big enough to tell rows apart at a glance
M = '<tool_call>\n{"name": "create_task", "arguments": {}}\n</tool_call>'
T = "OK."
EPISODE_SCRIPT = [M, T]  # each episode's completions
# create_task_1's (and create_task_1_with_env_assertions') gold call, as the chat template
# renders it back into later prompts
G = '<tool_call>\n{"name": "create_task", "arguments": {"user_id": "user_1", "title": "Important Meeting"}}\n</tool_call>'
NL_EVAL_REQUEST = "request a compliment"  # only create_task_1_nl_eval's user says it
# helpers/cpu_sglang.py's episode rules: a group's episodes [G, T] and [M, T], but both [M, T]
# for create_task_1_nl_eval
MIXED_FORCING = {
    "episodes": [
        {"when": NL_EVAL_REQUEST, "scripts": [EPISODE_SCRIPT]},
        {"scripts": [[G, T], EPISODE_SCRIPT]},
    ]
}
GROUP_SIZE = 2  # gconfig.n_samples: episodes in a GRPO group


def cpu_train_args(root: Path, model: Path, user_url: str, experiment: str, trial: str) -> list[str]:
    """`python -m tau2train.run` arguments of a GRPO run of the tiny model on mock, on CPU, as a
    user types them: one group of 2 episodes a step, one sequence per micro-batch. The caller
    adds the step count and checkpoint settings."""
    return [
        "mode=train",
        "domain=mock",
        "tracking=none",
        f"model.path={model}",
        "model.name=tiny-qwen3",
        f"experiment_name={experiment}",
        f"trial_name={trial}",
        # one CPU "GPU" for SGLang (the CPU server) and one for the FSDP actor
        "model.engine=fsdp",
        "allocation.rollout=sglang:d1",
        "allocation.actor=fsdp:d1",
        "cluster.n_gpus_per_node=2",
        "trainer.cpu_only=true",
        f"cluster.fileroot={root}/experiments",
        f"cluster.name_resolve.nfs_record_root={root}/name_resolve",
        # AReaL's worker command, with SGLang's launch pointed at the CPU server
        "actor.scheduling_spec.0.cmd=python -m helpers.cpu_rollout_worker",
        "actor.attn_impl=sdpa",
        "actor.dtype=float32",
        "actor.enable_tree_training=false",
        "actor.gradient_checkpointing=false",
        "actor.weight_update_mode=disk",
        # a step visibly moves the tiny model
        "actor.optimizer.lr=1e-3",
        # Token budgets: one sequence per micro-batch (mock prompts are ~700 tokens). On CPU
        # AReaL's FSDP engine runs sdpa, which ignores packed sequences' boundaries
        # (areal/engine/fsdp_engine.py:1898-1901 passes no attention mask), so two episodes in
        # one micro-batch would attend to each other.
        "gconfig.max_new_tokens=32",
        "gconfig.max_tokens=1024",
        "actor.mb_spec.max_tokens_per_mb=1024",
        "actor.pad_to_maximum=false",
        "sglang.context_length=1024",
        # one GRPO group of 2 episodes a step, one group in flight
        f"gconfig.n_samples={GROUP_SIZE}",
        "train_dataset.batch_size=1",
        "rollout.max_concurrent_rollouts=1",
        # each step's group is played by the latest weights (step 2's by version 1)
        "rollout.max_head_offpolicyness=0",
        "min_dataset_size=1",
        "total_train_epochs=1",
        "train_dataset.num_workers=0",
        "train_dataset.pin_memory=false",
        "valid_dataset.num_workers=0",
        "valid_dataset.pin_memory=false",
        f"econfig.user_llm_base_url={user_url}",
        "econfig.user_llm=openai/user",
        f"reward.format_penalty={PENALTY}",
    ]


def run_env(
    workdir: Path, name: str, forcing: dict | None = None, trace: bool = False
) -> tuple[dict[str, str], Path]:
    """The environment of a run named `name` (its forced completions written under `workdir`:
    `forcing`, what /tau2test/force takes, by default every episode [M, T]), and the file its
    filter and episode records go to. `trace`: the server's and the trainer's records too, and
    the weights of each version (traced(workdir, name))."""
    workdir.mkdir(parents=True, exist_ok=True)
    forced = workdir / "forced_completions.json"
    forced.write_text(json.dumps(forcing or {"turns": EPISODE_SCRIPT}))
    filter_log = workdir / f"{name}.filter.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "TORCHDYNAMO_DISABLE": "1",
        FORCED_ENV: str(forced),
        FILTER_LOG_ENV: str(filter_log),
    }
    if trace:
        server_log, train_log, weights = traced(workdir, name)
        env.update({SERVER_LOG_ENV: str(server_log), TRAIN_LOG_ENV: str(train_log), KEEP_WEIGHTS_ENV: str(weights)})
    return env, filter_log


def traced(workdir: Path, name: str) -> tuple[Path, Path, Path]:
    """Where a traced run leaves the server's records, the trainer's, and the weights of each
    version it served (helpers/cpu_rollout_worker.py)."""
    return workdir / f"{name}.server.jsonl", workdir / f"{name}.train.jsonl", workdir / f"{name}.weights"


def jsonl(path: Path, kind: str) -> list[dict]:
    """The records of one kind in a JSON-lines file ([] while it does not exist)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def plain(path: Path) -> str:
    """A log file's text without its colour codes ("" while it does not exist)."""
    return ANSI.sub("", path.read_text(errors="replace")) if path.exists() else ""


def records(filter_log: Path, kind: str) -> list[dict]:
    """The instrumentation's records of one kind ("group": a filter call, "episode")."""
    return jsonl(filter_log, kind)


def finished(text: str, who: str = "RolloutController") -> tuple[int, int]:
    """The count of the groups finished, (accepted, rejected), as last logged by AReaL's rollout
    controller (in the trainer process) or by its rollout worker (`who="RemoteInfEngine"`,
    which logs each group's end as it happens). A group AReaL dropped because an episode
    failed counts as rejected."""
    found = re.findall(
        rf"{who}\b.*INFO: Finish (?:and accept|but reject) rollout\. .*accepted: (\d+), rejected: (\d+)", text
    )
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def areal_dir(fileroot: Path, kind: str, experiment: str, trial: str) -> Path:
    """AReaL's <fileroot>/<kind>/<user>/<experiment>/<trial> (kind: logs, checkpoints)."""
    (found,) = fileroot.glob(f"{kind}/*/{experiment}/{trial}")
    return found


def processes_with_env(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment holds `marker` (e.g. a run's filter-log
    path, which every process of that run inherits, whatever its session or process group)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def main_log(root: Path, experiment: str, trial: str) -> str:
    """AReaL's controller log of a run under `root`'s experiments (empty until it exists)."""
    logs = list((root / "experiments" / "logs").glob(f"*/{experiment}/{trial}/main.log"))
    return plain(logs[0]) if logs else ""


def shared_root(tmp_path_factory, name: str) -> Path:
    """A run's storage, seen by every test host (as an NFS mount would be): a name with dots."""
    root = tmp_path_factory.mktemp(name) / "shared.v1"
    root.mkdir()
    return root


def saved_every_step(total_steps: int) -> list[str]:
    """A run of `total_steps` steps saving its weights and a recover checkpoint after each, and
    resuming from the last one when started again (recover.mode=auto)."""
    return [f"total_train_steps={total_steps}", "saver.freq_epochs=null", "saver.freq_steps=1",
            "recover.mode=auto", "recover.freq_epochs=null", "recover.freq_secs=null", "recover.freq_steps=1"]


def resumed_steps(areal_log: str) -> tuple[list[str], list[str]]:
    """(the steps AReaL's controller log says it recovered from, the steps it finished), over
    every run of one trial."""
    return (re.findall(r"Recovering from StepInfo\(.*global_step=(\d+)\b", areal_log),
            re.findall(r"Train step (\d+)/\d+ done", areal_log))
