"""`mode=eval`: score any OpenAI-compatible endpoint on a τ² task split, K trials per task.

This module checks the endpoints (`endpoints`), plans, and serves a checkpoint while it is
scored; the episodes are `eval_episodes`, the report `eval_results`, the tracking run
`eval_tracking`. An evaluation whose episodes failed outside the agent more often than
`eval.max_infra_failure_rate` allows ends in EvalIncomplete, its files marked so.

Episodes go through the same workflow training uses, so what is measured is what is
trained. Results are saved in tau2's own format (`tau2 view --file <results.json>` opens
them) and pass^k / average reward come from tau2's metrics code. Unless `eval.reward_basis`
says otherwise, each task is scored on its own basis — never on a training shortcut such as
`econfig.reward_basis=[DB]` — and the report names the basis used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from tau2train.config.checked import Checked
from tau2train.config.servers import ServedCheckpoint, server_command
from tau2train.launch.endpoints import check_endpoints
from tau2train.launch.eval_contract import contract_lines, eval_contract, scored_tasks
from tau2train.launch.eval_episodes import AGENT_API_KEY_ENV, play_all
from tau2train.launch.eval_results import (
    base_model_report,
    build_report,
    incomplete_message,
    render_report,
    write_results,
)
from tau2train.launch.eval_tracking import track
from tau2train.launch.eval_training import training
from tau2train.records.checkpoints import BASE_STEP
from tau2train.records.eval_report import Training
from tau2train.records.layout import eval_dir, eval_root
from tau2train.schemas import ExperimentConfig
from tau2train.user_sim.start import LocalServer, ServerFailed, wait_healthy

# The checkpoint server's log, in the evaluation's directory.
SERVER_LOG_NAME = "server.log"


def new_eval_dir(exp: ExperimentConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return eval_dir(exp.run_dir, exp.econfig.domain, exp.eval.split, exp.eval.agent_model, stamp)


def describe_agent(checked: Checked) -> str:
    ev, served = checked.config.eval, checked.served
    if served is None:
        return f"{ev.agent_model} at {ev.agent_base_url} (API key from ${AGENT_API_KEY_ENV})"
    step = "" if served.step is None else f" (step {served.step}{', the base model' if served.step == BASE_STEP else ''})"
    return (f"{served.name}: {served.path}{step}, served by {ev.server.server_module} on "
            f"{ev.server.host}:{ev.server.port} with {ev.server.gpus} GPU(s) while it runs")


def eval_plan(checked: Checked) -> str:
    """mode=eval's dry run: the plan (what is scored, on which tasks, under which contract)."""
    exp = checked.config
    ev = exp.eval
    tasks = scored_tasks(exp)
    return "\n".join(
        [
            "τ² evaluation plan (mode=eval, dry run: nothing started)",
            f"  agent       {describe_agent(checked)}",
            f"  tasks       {exp.econfig.domain}/{ev.split}, {len(tasks)} tasks x {ev.num_trials} trials, "
            f"{ev.max_concurrency} at a time",
            "  user        " + (
                "none (solo mode)" if exp.econfig.solo_mode
                else "{1} at {0}".format(*exp.econfig.user_sim_of(exp.econfig.domain))
            ),
            f"  results     {eval_root(exp.run_dir)}/<domain>-<split>-<model>-<time>/",
            "  contract (metrics.json; tau2train-compare and tau2train-submission refuse evaluations "
            "whose contracts differ):",
            *("  " + line for line in contract_lines(eval_contract(exp, tasks), len(tasks))),
            *training_lines(training(checked.served, exp.econfig.domain, [task.id for task in tasks]), len(tasks)),
        ]
    )


def training_lines(trained: Training | None, num_tasks: int) -> list[str]:
    """The plan's account of the checkpoint's training, and the warning when it scores tasks
    the checkpoint trained on."""
    if trained is None:
        return []
    warning = trained.warning(num_tasks)
    return ["  trained     " + "\n              ".join(trained.stages or ["(its runs' configs are not there to read)"]),
            *([f"  warning     {warning}"] if warning else [])]


def run_eval(checked: Checked) -> Path:
    """Evaluate (serving the checkpoint first, when one is named), print the report, and
    return the results directory."""
    check_endpoints(checked)
    exp, served = checked.config, checked.served
    if served is None:
        return _score(exp, None)
    exp = dataclasses.replace(exp, eval=dataclasses.replace(exp.eval, agent_model=served.name))
    out = new_eval_dir(exp)
    spec = exp.eval.server
    command = server_command(spec, served.path, served.name, "eval.server")
    server = LocalServer.start(command, out / SERVER_LOG_NAME)
    print(f"serving {served.path} as '{served.name}' (pid {server.process.pid}); log: {server.log}", flush=True)
    try:
        # the agent reaches the server on this machine's loopback address
        url = wait_healthy(server, spec.port, spec.startup_timeout_s, "checkpoint", "eval.server.startup_timeout_s")
        exp = dataclasses.replace(exp, eval=dataclasses.replace(exp.eval, agent_base_url=url))
        return _score(exp, served, out)
    except ServerFailed as error:
        raise EvalServerFailed(str(error)) from None
    finally:
        server.stop()
        print(f"stopped the checkpoint server (pid {server.process.pid})", flush=True)


class EvalServerFailed(Exception):
    """The checkpoint's server died or never answered; the message names its log."""


class EvalIncomplete(Exception):
    """Too many episodes failed outside the agent (eval.max_infra_failure_rate): the message
    gives their count, causes and first error."""


def _score(exp: ExperimentConfig, served: ServedCheckpoint | None, out: Path | None = None) -> Path:
    """Play every episode, write and print the report, log it to the tracking run."""
    out = out or new_eval_dir(exp)
    played = asyncio.run(play_all(exp, out))
    report = build_report(exp, played, served)
    write_results(out, played, report)
    base = base_model_report(exp, report)
    track(exp, report, out, base)
    print(render_report(report, out, base))
    if report.incomplete:
        raise EvalIncomplete(incomplete_message(report, out))
    return out
