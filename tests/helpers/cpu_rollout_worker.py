"""AReaL's own worker process (its RPC server), its inference server the CPU server with
completions a test can force: what `actor.scheduling_spec[0].cmd` runs in the CPU training tests.

    actor.scheduling_spec.0.cmd="python -m helpers.cpu_rollout_worker"   (tests/ on PYTHONPATH)

It is tau2train's CPU worker (tau2train/serving/rollout_worker.py: AReaL's RPC server, its
SGLang launch redirected by compat.areal.launch_sglang_as) with the test's own server and
instrumentation.

The server command is this module again (`python -m helpers.cpu_rollout_worker cpu-sglang
<AReaL's flags>`), which runs `helpers.cpu_sglang`'s own main, so that a test can give the
server completions to force before it answers anything:

* TAU2TEST_FORCED_COMPLETIONS=<json file>: what /tau2test/force takes (helpers/cpu_sglang.py),
  {"completions": [...], "turns": [...]}, given before the server listens, so no /generate can
  come first: queued completions, then a script of each episode's turns chosen by the prompt
  (with the model's real teacher-forced log-probabilities); without either the model samples.

Test-only instrumentation, off unless asked for:

* TAU2TEST_FILTER_LOG=<path>: every call of tau2train's group filter (`GroupFilter.__call__`,
  AReaL's dynamic_filter_fn, which AReaL unpickles and calls in this rollout worker:
  areal/infra/workflow_executor.py:1099) appends one JSON line to <path>: what AReaL passed to
  it (every key's shape and dtype, the rewards, and per row the tokens, the log-probabilities
  and the weight versions of its output), AReaL's task id, and what the filter answered; and
  every episode the τ² workflow plays appends one too (its τ² task, episode reward,
  per-completion rewards and failure, under the same AReaL task id). Behaviour is unchanged.
* TAU2TEST_SERVER_LOG=<path>: the CPU server appends a JSON line for each /generate it answers
  (prompt, output tokens, their log-probabilities, weight version) and each weight update
  (helpers/cpu_sglang.py's `generation_log`).
* TAU2TEST_KEEP_WEIGHTS=<dir>: the CPU server keeps every checkpoint it loads in an update under
  <dir>/weight_update_v<version> (hard links: AReaL deletes its own copy once loaded).
* TAU2TEST_TRAIN_LOG=<path>: the actor worker appends one JSON line per PPO update (AReaL's
  `PPOActor._ppo_update`, after its advantages are computed): AReaL's weight version, the loss
  mask's sum, and per row its tokens, the positions of the tokens the loss trains (AReaL rolls
  the loss mask by -1 in compute_advantages: a mask at t trains the log-probability of token
  t+1), their advantages, and the row's reward.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from tau2train.compat.areal import when_imported
from tau2train.serving.rollout_worker import run_worker

THIS_MODULE = "helpers.cpu_rollout_worker"
SERVE_CPU_SGLANG = "cpu-sglang"  # argv[1] that makes this module the CPU server
FILTER_LOG_ENV = "TAU2TEST_FILTER_LOG"
FORCED_ENV = "TAU2TEST_FORCED_COMPLETIONS"
SERVER_LOG_ENV = "TAU2TEST_SERVER_LOG"
KEEP_WEIGHTS_ENV = "TAU2TEST_KEEP_WEIGHTS"
TRAIN_LOG_ENV = "TAU2TEST_TRAIN_LOG"


def serve_cpu_sglang(argv: list[str]) -> None:
    """helpers.cpu_sglang's main, with TAU2TEST_FORCED_COMPLETIONS queued before it listens."""
    from helpers import cpu_sglang

    path = os.environ.get(FORCED_ENV)
    if path:
        with open(path) as f:
            forced = json.load(f)
        start = cpu_sglang.CPUSGLangServer.start

        def start_with_forced(server):
            # what /tau2test/force sets, set before the server answers anything
            server.force(forced.get("completions", []), forced.get("turns", []), forced.get("episodes", []))
            return start(server)

        cpu_sglang.CPUSGLangServer.start = start_with_forced
    cpu_sglang.CPUSGLangServer.generation_log = os.environ.get(SERVER_LOG_ENV) or None
    cpu_sglang.CPUSGLangServer.keep_weights = os.environ.get(KEEP_WEIGHTS_ENV) or None
    cpu_sglang.main(argv)


def describe_group(group: dict[str, Any]) -> dict[str, Any]:
    """What a dynamic filter received: every key's type, shape and dtype; the rewards; and
    each row's tokens, with the log-probabilities and weight versions of its output tokens."""
    described: dict[str, Any] = {}
    for key, value in group.items():
        if hasattr(value, "shape"):
            described[key] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        else:
            described[key] = {"type": type(value).__name__}
    info: dict[str, Any] = {"keys": described}
    if hasattr(group.get("rewards"), "tolist"):
        info["rewards"] = group["rewards"].tolist()
    rows = []
    if all(hasattr(group.get(k), "tolist") for k in ("input_ids", "attention_mask", "loss_mask")):
        for i in range(group["input_ids"].shape[0]):
            n = int(group["attention_mask"][i].sum())
            mask = group["loss_mask"][i, :n].tolist()
            out = [j for j, m in enumerate(mask) if m]
            row = {"input_ids": group["input_ids"][i, :n].tolist(), "output_positions": out}
            for key in ("logprobs", "versions"):
                if hasattr(group.get(key), "tolist"):
                    row[key] = [group[key][i, j].item() for j in out]
            rows.append(row)
    info["rows"] = rows
    return info


def record_filter_calls(path: str) -> None:
    """Log each GroupFilter call and each episode (see the module docstring) to `path`, one
    JSON line each: {"kind": "group", ...} and {"kind": "episode", ...}, both with AReaL's
    task id (areal.infra.workflow_context, which AReaL sets before it runs a task's episodes
    and still holds when it calls the filter: areal/infra/workflow_executor.py:1045, 1099)."""
    from areal.infra import workflow_context

    from tau2train.rollout.group_filter import GroupFilter
    from tau2train.rollout.workflow import Tau2AgentWorkflow

    lock = threading.Lock()

    def write(record: dict[str, Any]) -> None:
        record.update(task_id=workflow_context.get().task_id, pid=os.getpid())
        with lock, open(path, "a") as f:
            f.write(json.dumps(record) + "\n")

    original_call = GroupFilter.__call__

    def __call__(self, group):
        verdict = original_call(self, group)
        write({"kind": "group", **describe_group(group), "accepted": bool(verdict)})
        return verdict

    original_play = Tau2AgentWorkflow.play

    async def play(self, data, *args, **kwargs):
        episode = await original_play(self, data, *args, **kwargs)
        info = episode.info
        write(
            {
                "kind": "episode",
                "tau2_task": info.task_id,
                "reward": info.reward,
                "completion_rewards": list((info.completion_rewards or {}).values()),
                "failure": info.failure,
                "is_eval": workflow_context.get().is_eval,
                # the policy's tool calls, in order: [name, arguments]
                "tool_calls": [
                    [call.get("name"), call.get("arguments")]
                    for message in info.messages
                    if message.get("role") == "assistant"
                    for call in message.get("tool_calls") or []
                ],
            }
        )
        return episode

    GroupFilter.__call__ = __call__
    Tau2AgentWorkflow.play = play


def record_updates(path: str) -> None:
    """Log what each PPO update of the actor worker trains on (see the module docstring), once
    AReaL's actor is imported (the rollout worker never imports it, which costs seconds)."""
    when_imported("areal.trainer.ppo.actor", lambda module: patch_ppo_update(module.PPOActor, path))


def patch_ppo_update(PPOActor, path: str) -> None:
    original = PPOActor._ppo_update

    def _ppo_update(self, data):
        mask, lengths = data["loss_mask"], data["attention_mask"].sum(-1).tolist()
        rows = []
        for i, n in enumerate(lengths):
            trained = mask[i, : int(n)].nonzero().flatten().tolist()
            rows.append(
                {
                    "input_ids": data["input_ids"][i, : int(n)].tolist(),
                    "trained_positions": [t + 1 for t in trained],
                    "advantages": [float(data["advantages"][i, t]) for t in trained],
                    "reward": float(data["rewards"][i]),
                }
            )
        record = {"kind": "update", "version": self.engine.get_version(), "loss_mask_sum": float(mask.sum()),
                  "rows": rows, "pid": os.getpid()}
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return original(self, data)

    PPOActor._ppo_update = _ppo_update


def main() -> None:
    if sys.argv[1:2] == [SERVE_CPU_SGLANG]:
        serve_cpu_sglang(sys.argv[2:])
        return
    if os.environ.get(FILTER_LOG_ENV):
        record_filter_calls(os.environ[FILTER_LOG_ENV])
    if os.environ.get(TRAIN_LOG_ENV):
        record_updates(os.environ[TRAIN_LOG_ENV])
    run_worker(THIS_MODULE, SERVE_CPU_SGLANG)


if __name__ == "__main__":
    main()
