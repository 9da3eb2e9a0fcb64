"""`mode=eval`'s episodes: every task of the split (or the subset eval.task_ids / eval.num_tasks
pick), K trials each, through the training workflow, gathered into tau2's Results and one Outcome per episode."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from tau2train.records.episode_failure import Failure
from tau2train.records.eval_report import AGENT_ENDPOINT, INFRA_ERROR_KEY
from tau2train.records.layout import generated_dir
from tau2train.schemas import ExperimentConfig

if TYPE_CHECKING:  # tau2's data model and metrics load only when an evaluation runs
    from tau2.data_model.simulation import Info, Results, SimulationRun

    from tau2train.reports.metrics import Outcome
    from tau2train.rollout.workflow import Tau2AgentWorkflow

# The agent endpoint's API key comes from here, never from a config file.
AGENT_API_KEY_ENV = "OPENAI_API_KEY"
# Orchestrator's default; recorded in tau2's results header.
TAU2_MAX_ERRORS = 10


@dataclasses.dataclass(frozen=True)
class EvalEpisodes:
    """What an evaluation's episodes left: tau2's Results (results.json), one Outcome per
    episode in (trial, task) order, and the agent's own faults (tau2 refused its output:
    scored, and listed in the report)."""

    results: Results
    outcomes: list[Outcome]
    agent_errors: list[str]


@dataclasses.dataclass
class _Runner:
    """One evaluation's episodes in flight: the workflow, the concurrency gate and what the
    finished ones left."""

    exp: ExperimentConfig
    workflow: Tau2AgentWorkflow
    gate: asyncio.Semaphore
    bar: tqdm
    outcomes: list[Outcome] = dataclasses.field(default_factory=list)
    agent_errors: list[str] = dataclasses.field(default_factory=list)

    async def episode(self, task_id: str, trial: int) -> SimulationRun:
        """One episode; a failure outside the agent is kept, marked, in tau2's record."""
        from tau2.data_model.simulation import RewardInfo, TerminationReason
        from tau2.utils.utils import get_now

        from tau2train.reports.metrics import Outcome
        from tau2train.rollout.episode import unfinished_run

        ev = self.exp.eval
        async with self.gate:
            started, infra_error, cause = get_now(), None, ""
            try:
                played = await self.workflow.play({"task_id": task_id, "split": ev.split}, ev.agent_base_url,
                                                  os.environ.get(AGENT_API_KEY_ENV) or "EMPTY")
                simulation = played.simulation
                if played.discard_reason:  # user simulator down, evaluator raised
                    infra_error, cause = played.discard_reason, played.failure.value
                elif played.info.error:
                    self.agent_errors.append(f"task {task_id} trial {trial}: {played.info.error}")
            except Exception as e:  # the agent endpoint failed, or the episode timed out
                infra_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                cause = Failure.TIMEOUT.value if isinstance(e, TimeoutError) else AGENT_ENDPOINT
                simulation = unfinished_run(task_id, TerminationReason.AGENT_ERROR, started, 0.0)
            if infra_error is not None:
                # tau2's record keeps the episode, marked; the metrics leave it out (or score 0)
                reward_info = simulation.reward_info or RewardInfo(reward=0.0)
                reward_info.info = {**(reward_info.info or {}), INFRA_ERROR_KEY: infra_error}
                simulation.reward_info = reward_info
            simulation.trial = trial
            self.outcomes.append(Outcome(task_id, trial, float(simulation.reward_info.reward), infra_error, cause))
            self.bar.update()
            return simulation


def _workflow(exp: ExperimentConfig, out: Path) -> Tau2AgentWorkflow:
    """The training workflow, scoring on the evaluation's basis (default: each task's own),
    never training's shortcut."""
    from tau2train.rollout.workflow import Tau2AgentWorkflow

    ev = exp.eval
    scoring = dataclasses.replace(exp.econfig, reward_basis=ev.reward_basis, reward_basis_by_domain={})
    return Tau2AgentWorkflow(econfig=scoring, gen_args=ev.gen_args, timeout=ev.episode_timeout,
                             dump_dir=str(generated_dir(out)), max_concurrent_episodes=ev.max_concurrency,
                             agent_model=ev.agent_model)


async def play_all(exp: ExperimentConfig, out: Path) -> EvalEpisodes:
    """Every (task, trial) of the split, at most eval.max_concurrency at once."""
    from tau2.data_model.simulation import Results

    from tau2train.launch.eval_contract import scored_tasks

    ev, env = exp.eval, exp.econfig
    tasks = scored_tasks(exp)
    task_ids = [task.id for task in tasks]
    jobs = [(task_id, trial) for trial in range(ev.num_trials) for task_id in task_ids]
    bar = tqdm(total=len(jobs), desc=f"{env.domain}/{ev.split}", unit="episode")
    runner = _Runner(exp, _workflow(exp, out), asyncio.Semaphore(ev.max_concurrency), bar)
    try:
        simulations = await asyncio.gather(*(runner.episode(t, k) for t, k in jobs))
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: asyncio.run cancels every episode's task on its way out, and what
        # their requests raise while torn down (e.g. "Executor shutdown has been called") it
        # would report after the run's last line: noise, not news.
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        raise
    finally:
        bar.close()
    results = Results(info=results_info(exp), tasks=tasks, simulations=list(simulations))
    outcomes = sorted(runner.outcomes, key=lambda o: (o.trial, task_ids.index(o.task_id)))
    return EvalEpisodes(results, outcomes, runner.agent_errors)


def results_info(exp: ExperimentConfig) -> Info:
    """tau2's Results header: who played, against what, with which settings."""
    from tau2.data_model.simulation import AgentInfo, Info, UserInfo
    from tau2.registry import registry

    ev, env = exp.eval, exp.econfig
    environment = registry.get_env_constructor(env.domain)(solo_mode=env.solo_mode)
    return Info(
        git_commit=f"tau2train-{importlib.metadata.version('tau2train')}",
        num_trials=ev.num_trials,
        max_steps=env.max_steps_of(env.domain),
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
