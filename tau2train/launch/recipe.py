"""`mode=recipe`: the whole recipe a GPU user runs stage by stage, run in one command on this
machine (`make run` = `python -m tau2train.run experiment=cpu_miniature`):

    model      the weights to start from (the tiny Qwen3 is built here when it is missing)
    user       the user simulator (allocation-free: the rule-based one) started, its URL passed on
    sft data   gold replays of the domain's tasks → an AReaL-tau2-data SFT file
    sft        python -m tau2train.run <your overrides> mode=sft data=areal_tau2 data.path=<it>
    train      ... mode=train actor.path=<the SFT checkpoint>        (GRPO)
    eval ×3    ... mode=eval eval.checkpoint=<base | SFT | RL>
    compare    tau2train-compare <SFT eval> <RL eval>

Each stage is the command a user would type (printed, its output in <run dir>/recipe/<stage>.log);
this process prints a line per stage and per training step, then one table (pass^1 ± SE of base,
SFT and RL, RL against SFT, the wall time of each stage) and a PNG of the mean reward by RL step.
Ctrl-C or SIGTERM stops the stage running (its whole process group) and the user simulator.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tau2train.config import validate as checks
from tau2train.config.checked import Checked
from tau2train.config.compose import Composed
from tau2train.config.errors import ConfigError
from tau2train.config.servers import server_command
from tau2train.launch.gold_replays import write_gold_sft
from tau2train.records import checkpoints
from tau2train.records.eval_report import EvalReport, read_eval_report
from tau2train.records.layout import eval_root
from tau2train.records.overrides import override_key
from tau2train.reports import compare as comparing
from tau2train.reports.areal_log import ANSI, STEP_DONE, step_stats
from tau2train.reports.plots import reward_by_step_png
from tau2train.schemas import ExperimentConfig
from tau2train.user_sim.start import LocalServer, ServerFailed, wait_healthy

RECIPE_DIR = "recipe"
# Overrides of the recipe command that its stages set themselves.
STAGE_KEYS = ("mode", "dry_run", "trial_name", "actor.path", "data", "data.path", "eval.checkpoint",
              "econfig.user_llm_base_url", "econfig.user_llm", "saver.freq_epochs", "saver.freq_steps")
SFT_DONE = re.compile(r"^SFT finished: checkpoint of step \d+ at (.+)$", re.MULTILINE)
POLL_S = 1.0


class StageFailed(Exception):
    """A stage failed (its command exited non-zero, or left no checkpoint); the message names
    it and its log."""


def check_recipe(composed: Composed) -> Checked:
    """mode=recipe's checks (tau2train.config.validate.check_recipe), and a rule-based user
    simulator that has rules for the domain and plays every task the recipe trains on."""
    from tau2train.user_sim import rule_based

    exp = composed.config
    if exp.user_sim.server_module == rule_based.__name__:
        coverage = rule_based.coverage(exp.econfig.domain, "domain")
        unplayed = [t for t in (exp.domain.tasks or []) if t in coverage.left_out]
        if unplayed:
            raise ConfigError("domain.tasks", unplayed, "the rule-based user simulator does not play "
                              + "; ".join(f"{t}: {coverage.left_out[t]}" for t in unplayed),
                              valid=", ".join(coverage.played), fix="leave those tasks out of domain.tasks")
    return checks.check_recipe(composed)


@dataclasses.dataclass
class Stage:
    name: str
    seconds: float = 0.0
    note: str = ""


@dataclasses.dataclass
class Recipe:
    """One recipe run: where it writes, the overrides every stage repeats, what it measured."""

    exp: ExperimentConfig
    base_overrides: list[str]
    out: Path
    stages: list[Stage] = dataclasses.field(default_factory=list)
    rewards: dict[int, float] = dataclasses.field(default_factory=dict)  # RL step -> mean reward
    user_url: str = ""
    evals: dict[str, Path] = dataclasses.field(default_factory=dict)  # base, sft, rl -> eval dir
    reports: dict[str, EvalReport] = dataclasses.field(default_factory=dict)  # the same -> its report

    def say(self, line: str) -> None:
        print(line, flush=True)

    def timed(self, name: str, work: Callable[[], tuple[str, str | None]]) -> str | None:
        """Run one stage: `work` returns what to say of it and what it made (a checkpoint)."""
        started = time.monotonic()
        self.say(f"[{len(self.stages) + 1}] {name} ...")
        note, made = work()
        stage = Stage(name, time.monotonic() - started, note)
        self.stages.append(stage)
        self.say(f"[{len(self.stages)}] {name}: {note} ({stage.seconds:.0f} s)")
        return made


def recipe_plan(checked: Checked) -> str:
    exp = checked.config
    base = " ".join(stage_overrides(checked))
    run = f"python -m tau2train.run {base}"
    return "\n".join([
        "tau2train recipe plan (mode=recipe, dry run: nothing started)",
        f"  model       {exp.model.name}: {exp.model.path} ({exp.model.num_params or '?'} parameters, "
        f"served by allocation.server={exp.allocation.server})",
        f"  domain      {exp.econfig.domain}, split {exp.domain.train_split} (trained and evaluated on the "
        "same tasks: this measures whether the loop learns, not whether it generalises)",
        f"  user        {exp.user_sim.server_module} ({exp.user_sim.served_model_name})",
        f"  stages      sft data: gold replays of every task → {exp.run_dir}/{RECIPE_DIR}/sft-data",
        f"              sft:   {run} mode=sft data=areal_tau2 data.path=<sft data>",
        f"              train: {run} mode=train actor.path=<SFT checkpoint>",
        f"              eval:  {run} mode=eval eval.checkpoint=<base | SFT | RL checkpoint>",
        "              compare: tau2train-compare <SFT eval> <RL eval>",
        f"  output      {exp.run_dir}/{RECIPE_DIR}/ (stage logs, summary.json, reward_by_step.png)",
    ])


def stage_overrides(checked: Checked) -> list[str]:
    """The recipe command's own overrides, less what the stages set, plus its trial name."""
    kept = [o for o in checked.composed.overrides if override_key(o) not in STAGE_KEYS]
    return [*kept, f"trial_name={checked.config.trial_name}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_recipe(checked: Checked) -> None:
    exp = checked.config
    recipe = Recipe(exp, stage_overrides(checked), Path(exp.run_dir) / RECIPE_DIR)
    recipe.out.mkdir(parents=True, exist_ok=True)
    recipe.say(f"tau2train recipe: {exp.model.name} on τ² {exp.econfig.domain}, everything under {recipe.out}")
    recipe.timed("model", lambda: (build_model(exp), None))
    user = start_user(recipe)
    try:
        run_stages(recipe, user)
    finally:
        user.stop()
    finish(recipe)


def build_model(exp: ExperimentConfig) -> str:
    from tau2train.serving.tiny_qwen import build_tiny_qwen, tiny_qwen_width

    path = Path(exp.actor.path)
    if path.is_dir():
        return f"{path} (already built)"
    build_tiny_qwen(path, tiny_qwen_width(path))  # validation allowed a missing path only for these
    return f"tiny Qwen3 built at {path} (Qwen3's tokenizer, random weights, {exp.model.num_params:,} parameters)"


def start_user(recipe: Recipe) -> LocalServer:
    spec = dataclasses.replace(recipe.exp.user_sim, host="127.0.0.1", port=free_port())
    command = server_command(spec, spec.model_path, spec.served_model_name)
    server = LocalServer.start(command, recipe.out / "user_sim.log")
    started = time.monotonic()
    try:
        url = wait_healthy(server, spec.port, spec.startup_timeout_s, "user-sim")
    except ServerFailed as error:
        server.stop()
        raise StageFailed(str(error)) from None
    recipe.base_overrides += [f"econfig.user_llm_base_url={url}", f"econfig.user_llm=openai/{spec.served_model_name}"]
    recipe.stages.append(Stage("user simulator", time.monotonic() - started, url))
    recipe.say(f"[{len(recipe.stages)}] user simulator: {spec.served_model_name} ({spec.server_module}) at {url}")
    recipe.user_url = url
    return server


def run_stages(recipe: Recipe, user: LocalServer) -> None:
    exp = recipe.exp
    data_dir = recipe.out / "sft-data"
    recipe.timed("sft data", lambda: (gold_data(recipe, data_dir), None))
    sft_ckpt = recipe.timed("sft", lambda: sft_stage(recipe, data_dir))
    rl_ckpt = recipe.timed("train", lambda: train_stage(recipe, sft_ckpt))
    for label, path in (("base", exp.actor.path), ("sft", sft_ckpt), ("rl", rl_ckpt)):
        recipe.timed(f"eval {label}", lambda label=label, path=path: (eval_stage(recipe, label, path), None))


def gold_data(recipe: Recipe, data_dir: Path) -> str:
    from tau2train.rollout.episode import split_tasks

    exp = recipe.exp
    env = dataclasses.replace(exp.econfig, user_llm_base_url=recipe.user_url)
    tasks = [t.id for t in split_tasks(exp.econfig.domain, exp.domain.train_split, exp.domain.tasks)]
    replays = write_gold_sft(data_dir, env, exp.domain.train_split, tasks, recipe.user_url,
                             exp.user_sim.served_model_name)
    left = "; ".join(f"{t} (gold replay scored {r:g})" for t, r in replays.failed.items())
    return f"{replays.rows} rows from {len(replays.tasks)} gold replays" + (f"; left out: {left}" if left else "")


def command(recipe: Recipe, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "tau2train.run", *recipe.base_overrides, *overrides]


def run_command(recipe: Recipe, name: str, cmd: list[str]) -> str:
    """Run a stage's command to its end, a line per training step; its whole log back."""
    log = recipe.out / f"{name.replace(' ', '_')}.log"
    recipe.say("      python " + shlex.join(cmd[1:]) + f"   (log: {log})")
    process = LocalServer.start(cmd, log)
    seen = 0
    try:
        while process.process.poll() is None:
            seen = progress(recipe, name, log, seen)
            time.sleep(POLL_S)
    except BaseException:
        process.stop()
        raise
    progress(recipe, name, log, seen)
    text = ANSI.sub("", log.read_text(errors="replace"))
    if process.process.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise StageFailed(f"stage {name} failed (exit {process.process.returncode}); its log: {log}\n{tail}")
    return text


def progress(recipe: Recipe, name: str, log: Path, seen: int) -> int:
    """Print the training steps logged since the last look; how many have been seen."""
    text = ANSI.sub("", log.read_text(errors="replace")) if log.exists() else ""
    stats = step_stats(text)
    for step in sorted(s for s in stats if s > seen and stats[s]):
        reward = stats[step].get(f"rollout/{recipe.exp.econfig.domain}/reward")
        # AReaL counts a PPO run's steps from its epochs; the run stops at total_train_steps
        total = recipe.exp.total_train_steps if name == "train" else STEP_DONE.findall(text)[-1][1]
        extra = f", mean reward {reward:.3f}" if reward is not None else ""
        if reward is not None and name == "train":
            recipe.rewards[step] = reward
        recipe.say(f"      {name} step {step}/{total}{extra}")
        seen = step
    return seen


def sft_stage(recipe: Recipe, data_dir: Path) -> tuple[str, str]:
    # one checkpoint, after the last epoch
    text = run_command(recipe, "sft", command(recipe, "mode=sft", "data=areal_tau2", f"data.path={data_dir}",
                                              f"saver.freq_epochs={recipe.exp.sft.epochs}", "saver.freq_steps=null"))
    match = SFT_DONE.search(text)
    if not match:
        raise StageFailed(f"stage sft printed no checkpoint; its log: {recipe.out}/sft.log")
    found = match.group(1).strip()
    return f"checkpoint {found}", found


def train_stage(recipe: Recipe, start: str) -> tuple[str, str]:
    exp = recipe.exp
    # one checkpoint, after the last step
    run_command(recipe, "train", command(recipe, "mode=train", f"actor.path={start}", "saver.freq_epochs=null",
                                         f"saver.freq_steps={exp.total_train_steps}"))
    root = checkpoints.run_checkpoint_root(exp.cluster.fileroot, exp.experiment_name, exp.trial_name)
    saved = checkpoints.checkpoints(root)
    if not saved:
        raise StageFailed(f"stage train saved no checkpoint under {root}")
    step = max(saved)
    return f"checkpoint of step {step}: {saved[step]}", str(saved[step])


def eval_stage(recipe: Recipe, label: str, path: str) -> str:
    before = set(eval_root(recipe.exp.run_dir).glob("*"))
    run_command(recipe, f"eval {label}", command(recipe, "mode=eval", f"eval.checkpoint={path}"))
    made = sorted(set(eval_root(recipe.exp.run_dir).glob("*")) - before)
    if len(made) != 1:
        raise StageFailed(f"stage eval {label} left {len(made)} evaluation directories")
    recipe.evals[label] = made[0]
    report = recipe.reports[label] = read_eval_report(made[0] / "metrics.json")
    return f"pass^1 {pass1_text(report)} ({made[0]})"


def pass1_text(report: EvalReport) -> str:
    value, se = report.pass1, report.pass_hat_1_se
    if value is None:
        return "none"
    return f"{100 * value:.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def finish(recipe: Recipe) -> None:
    """The comparison, the table, the PNG and summary.json."""
    a, b = recipe.evals["sft"], recipe.evals["rl"]
    ((ea, eb),) = comparing.pairs(str(a), str(b))
    verdict = comparing.compare(ea, eb, ("SFT", "RL"))
    png = reward_by_step_png(recipe.rewards, recipe.out / "reward_by_step.png",
                             f"{recipe.exp.model.name} on {recipe.exp.econfig.domain}: mean reward by RL step")
    lines = table(recipe, verdict)
    recipe.say("\n".join(lines))
    summary = {
        "pass1": {k: report.pass1 for k, report in recipe.reports.items()},
        "rl_minus_sft": {"difference": verdict.difference, "low": verdict.low, "high": verdict.high,
                         "verdict": verdict.verdict(("SFT", "RL"))},
        "reward_by_step": recipe.rewards,
        "stages": {s.name: round(s.seconds, 1) for s in recipe.stages},
        "evals": {k: str(v) for k, v in recipe.evals.items()},
        "plot": str(png) if png else None,
    }
    (recipe.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def table(recipe: Recipe, verdict: comparing.Comparison) -> list[str]:
    exp = recipe.exp
    reports = recipe.reports
    trials = reports["rl"].num_trials
    lines = [
        "",
        f"tau2train recipe: {exp.model.name} on τ² {exp.econfig.domain} ({reports['rl'].num_tasks} tasks, "
        f"{trials} trial{'s' if trials != 1 else ''} each, trained and evaluated on the same tasks: whether the loop learns, "
        "not whether it generalises)",
        f"  {'checkpoint':<10} pass^1 (%)",
    ]
    lines += [f"  {label:<10} {pass1_text(reports[label])}" for label in ("base", "sft", "rl")]
    lines += [
        f"  RL − SFT   {100 * verdict.difference:+.1f} points, 95% interval {100 * verdict.low:+.1f} to "
        f"{100 * verdict.high:+.1f}: {verdict.verdict(('SFT', 'RL'))}",
        "  wall time  " + ", ".join(f"{s.name} {s.seconds:.0f} s" for s in recipe.stages),
        f"  outputs    {recipe.out}",
    ]
    return lines
