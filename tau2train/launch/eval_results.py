"""`mode=eval`'s report: the EvalReport of an evaluation's episodes (metrics.json), the
leaderboard entry beside it, the base model's report to compare with, and the text printed."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from tau2train.config.checked import AGENT, USER_SIM
from tau2train.config.servers import ServedCheckpoint
from tau2train.launch.eval_contract import eval_contract
from tau2train.launch.eval_episodes import EvalEpisodes
from tau2train.launch.eval_training import training
from tau2train.records.checkpoints import BASE_STEP
from tau2train.records.episode_failure import Failure
from tau2train.records.eval_report import (
    AGENT_ENDPOINT,
    EvalReport,
    EvaluatedCheckpoint,
    LeaderboardFields,
    read_eval_report,
)
from tau2train.records.files import write_atomic
from tau2train.records.layout import EVAL_DIR, METRICS_NAME, RESULTS_NAME, SUBMISSION_NAME, eval_stamp
from tau2train.reports.compare import CannotCompare, Comparison, Evaluation, compare, render_versus
from tau2train.reports.leaderboard import CUSTOM, render_comparison, submission
from tau2train.reports.metrics import EXCLUDED
from tau2train.schemas import ALL_TASKS, ExperimentConfig

# What failed outside the agent (InfraFailure.cause), as the report names it, and where to look.
CAUSES = {
    AGENT_ENDPOINT: (AGENT, "eval.agent_base_url and eval.agent_model"),
    Failure.USER_SIM.value: (USER_SIM, "the user simulator (econfig.user_llm_base_url, econfig.user_llm)"),
    Failure.TIMEOUT.value: ("episode timeout", "eval.episode_timeout and eval.max_concurrency"),
    Failure.EVALUATOR.value: ("evaluator", "the NL-assertion judge (econfig.nl_judge)"),
}


def cause_name(cause: str) -> str:
    return CAUSES[cause][0] if cause in CAUSES else cause or "unrecorded cause"


def incomplete_because(summary: dict, limit: float) -> str | None:
    """Why an evaluation's numbers (`summary`: summarize's) cannot stand: more than `limit` of its
    episodes failed outside the agent; None when they can."""
    failures, episodes = summary["infra_failures"], summary["num_episodes"]
    if not episodes or len(failures) / episodes <= limit:
        return None
    causes = Counter(cause_name(f.cause) for f in failures)
    first = failures[0]
    return (
        f"{len(failures)} of {episodes} episodes failed outside the agent, more than "
        f"eval.max_infra_failure_rate={limit} allows (cause: "
        + ", ".join(f"{n} {cause}" for cause, n in causes.most_common())
        + f"); first: task {first.task_id} trial {first.trial}: {first.error}"
    )


def build_report(exp: ExperimentConfig, played: EvalEpisodes, served: ServedCheckpoint | None) -> EvalReport:
    """The report of `played`: the numbers (tau2's metrics), what was evaluated and how."""
    from tau2train.reports.metrics import summarize  # tau2's metrics: imported only to evaluate
    from tau2train.rollout.episode import split_tasks

    ev, env = exp.eval, exp.econfig
    summary = summarize(played.outcomes, ev.num_trials, ev.count_failures_as_wrong)
    trained = training(served, env.domain, [task.id for task in played.results.tasks])
    return EvalReport(
        domain=env.domain,
        agent_model=ev.agent_model,
        num_tasks=len(played.results.tasks),
        contract=eval_contract(exp, played.results.tasks),
        num_tasks_in_domain=len(split_tasks(env.domain, ALL_TASKS)),
        num_trials=ev.num_trials,
        **summary,
        agent_errors=played.agent_errors,
        evaluated_on=time.strftime("%Y-%m-%d"),
        checkpoint=None if served is None else EvaluatedCheckpoint(served.path, served.step),
        training=trained,
        leaderboard=LeaderboardFields(
            model_name=ev.agent_model,
            model_organization=ev.model_organization,
            submitting_organization=ev.submitting_organization,
            # the leaderboard's rule: a model trained on τ² tasks or rewards is custom
            submission_type=CUSTOM if trained else ev.submission_type,
        ),
        incomplete=incomplete_because(summary, ev.max_infra_failure_rate),
        trained_tasks_warning=trained.warning(len(played.results.tasks)) if trained else None,
    )


def write_results(out: Path, played: EvalEpisodes, report: EvalReport) -> None:
    """results.json (tau2's format), metrics.json and, unless the evaluation is incomplete, the
    domain's leaderboard entry."""
    write_atomic(out / RESULTS_NAME, played.results.model_dump_json(indent=2))
    write_atomic(out / METRICS_NAME, json.dumps(report.to_json(), indent=2))
    if report.incomplete is None:
        write_atomic(out / SUBMISSION_NAME, json.dumps(submission([report]), indent=2) + "\n")


def incomplete_message(report: EvalReport, out: Path) -> str:
    """What `mode=eval` says, last, of an incomplete evaluation: why, what it wrote, what to check."""
    causes = {f.cause for f in report.infra_failures} & set(CAUSES)
    check = "; ".join(CAUSES[c][1] for c in sorted(causes))
    return "\n".join([
        f"the evaluation is incomplete: {report.incomplete}",
        f"  written, marked incomplete: {out / METRICS_NAME}, {out / RESULTS_NAME}; no {SUBMISSION_NAME}",
        (f"  fix:   check {check or 'what failed'}, then evaluate again "
         "(eval.max_infra_failure_rate sets how many failures an evaluation may have)"),
    ])


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# How the comparison with the base model names its two sides (A, B).
BASE_NAMES = ("base model", "this checkpoint")


def base_model_report(exp: ExperimentConfig, report: EvalReport) -> Evaluation | None:
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
            found.append((eval_stamp(path.parent), Evaluation(path.parent, other)))
    return max(found, key=lambda item: item[0])[1] if found else None


def versus_base(report: EvalReport, out: Path, base: Evaluation | None) -> Comparison | str | None:
    """This evaluation against the base model's, paired by task (tau2train-compare's numbers);
    why they do not compare (another task set, ...), or None without a base model."""
    if base is None:
        return None
    try:
        return compare(base, Evaluation(out, report), BASE_NAMES)
    except CannotCompare as error:
        return f"not compared with the base model: {error}"


def render_report(report: EvalReport, out: Path, base: Evaluation | None = None) -> str:
    r, se = report, report.avg_reward_se
    lines = [
        f"τ² evaluation: {r.domain}/{r.split}, {r.num_tasks} tasks x {r.num_trials} trials, agent {r.agent_model}",
        f"task set: {r.task_set.describe()}",
        *([f"a subset: {r.contract.tasks.describe(r.num_tasks)}: a quick look, which tau2train-submission "
           "refuses"] if r.contract.tasks.subset else []),
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
    lines += render_comparison([r], {base.report.domain: base.report} if base else None)
    versus = versus_base(r, out, base)
    if versus is not None:
        lines += ["  " + line for line in ([versus] if isinstance(versus, str) else render_versus(versus, BASE_NAMES))]
    if r.training:
        lines += ["trained (tau2train's runs):", *(f"  {stage}" for stage in r.training.stages)]
    if r.trained_tasks_warning:
        lines.append(f"warning: {r.trained_tasks_warning}")
    lines.append(f"results (tau2 format): {out / RESULTS_NAME}  — open with `tau2 view --file ...`")
    if r.incomplete:
        lines.append(f"no leaderboard entry: the evaluation is incomplete ({METRICS_NAME}: \"incomplete\")")
    else:
        lines.append(
            f"leaderboard entry ({r.leaderboard.submission_type}): {out / SUBMISSION_NAME}; "
            "merge domains with `tau2train-submission <eval dir> ...`"
        )
    return "\n".join(lines)
