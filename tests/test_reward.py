"""The reward group (conf/reward/): terms named in config, summed into the episode's shaped
reward, and the shaping around them. Real tau2 episodes against the scripted LLM server
(tests/helpers/scripted_llm.py); no AReaL is started."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from helpers.cli import USER_SIM, in_process

from tau2train.config.compose import compose
from tau2train.rollout.reward_terms import RewardContext, db_check, matches, partial_actions
from tau2train.rollout.group_filter import GroupFilter, record_episode_reward
from tau2train.rollout.shaping import Shaping
from tau2train.rollout.workflow import Tau2AgentWorkflow
from tau2train.schemas import EnvConfig, RewardSpec, tau2_reward

TERMS = "tau2train.rollout.reward_terms"


def reward_of(choice: str, *overrides: str) -> RewardSpec:
    """The reward a run with reward=<choice> trains on, as composed."""
    return compose([f"reward={choice}", USER_SIM, *overrides]).config.reward


def workflow(llm, script: str, reward=None, **env) -> Tau2AgentWorkflow:
    econfig = EnvConfig(domain="airline", user_llm_base_url=llm.base_url, user_llm="user", **env)
    return Tau2AgentWorkflow(econfig=econfig, agent_model=script, timeout=60.0, reward=reward)


def play(wf: Tau2AgentWorkflow, llm, task_id: str = "7"):
    return asyncio.run(wf.play({"task_id": task_id, "split": "train"}, llm.base_url, "k"))


def test_reward_tau2_is_the_reward_training_gave_before_the_group_existed(llm):
    """reward=tau2 is tau2's reward alone with the old defaults (econfig.invalid_format_penalty
    0.1, econfig.turn_discount 1.0, actor.reward_scaling 10, actor.reward_bias -0.5), and the
    episodes' rewards are the hand-computed ones: a malformed call -0.1, tau2's 0/1 last."""
    exp = compose(["reward=tau2", USER_SIM]).config
    assert exp.reward == tau2_reward()
    assert [(t._target_, t.weight, t.args) for t in exp.reward.terms] == [(f"{TERMS}.tau2", 1.0, {})]
    assert (exp.reward.format_penalty, exp.rollout.agent.turn_discount) == (0.1, 1.0)
    assert (exp.actor.reward_scaling, exp.actor.reward_bias) == (10.0, -0.5)

    trained = dataclasses.asdict(exp.reward)  # as AReaL ships it to its workers
    malformed = play(workflow(llm, "malformed", trained), llm).info
    assert list(malformed.completion_rewards.values()) == [-0.1] * 3 + [0.0] * 5 + [1.0]
    assert malformed.reward == malformed.shaped_reward == 1.0
    assert malformed.reward_terms == [{"term": f"{TERMS}.tau2", "weight": 1.0, "value": 1.0}]
    wrong = play(workflow(llm, "wrong", trained), llm).info
    assert list(wrong.completion_rewards.values()) == [0.0] * 5
    assert wrong.reward == wrong.shaped_reward == 0.0


def test_partial_actions_credits_each_gold_action_matched(llm):
    """reward=partial_actions: 0.7 x tau2 + 0.3 x (gold actions matched / gold actions). The
    "wrong" script plays every gold action but the last: airline task 7 has 5 (4 matched),
    task 14 has 2 (1 matched); neither solves its task."""
    spec = reward_of("partial_actions")
    assert [(t._target_.rsplit(".", 1)[1], t.weight) for t in spec.terms] == [("tau2", 0.7), ("partial_actions", 0.3)]
    for script, task, tau2, matched in (("wrong", "7", 0.0, 4 / 5), ("wrong", "14", 0.0, 1 / 2), ("gold", "7", 1.0, 1.0)):
        info = play(workflow(llm, script, spec), llm, task).info
        assert info.reward == tau2, (script, task)  # tau2's own, whatever was trained
        assert [t["value"] for t in info.reward_terms] == pytest.approx([tau2, matched])
        assert info.shaped_reward == pytest.approx(0.7 * tau2 + 0.3 * matched)
        assert list(info.completion_rewards.values())[-1] == pytest.approx(info.shaped_reward)


def cut_short(task_id: str, *calls, reward_info=None) -> RewardContext:
    """An airline episode that made `calls` and ran out of steps (tau2's reward: 0)."""
    from tau2.data_model.message import AssistantMessage
    from tau2.data_model.simulation import TerminationReason

    from tau2train.rollout.episode import find_task, unfinished_run

    messages = [AssistantMessage(role="assistant", tool_calls=[c]) for c in calls]
    run = unfinished_run(task_id, TerminationReason.MAX_STEPS, "2025-01-01T00:00:00", 1.0, messages)
    return RewardContext(find_task("airline", "train", task_id), run, reward_info or run.reward_info)


def test_a_call_missing_the_gold_arguments_earns_no_partial_credit():
    """tau2 compares only the arguments a call carries, so cancel_reservation({}) matches any
    gold cancel_reservation; partial_actions requires every argument the action compares. An
    episode cut short still earns its partial credit."""
    from tau2.data_model.message import ToolCall

    task = cut_short("14").task  # gold: cancel_reservation, book_reservation
    cancel = next(a for a in task.evaluation_criteria.actions if a.name == "cancel_reservation")
    empty = ToolCall(id="1", name="cancel_reservation", arguments={})
    right = ToolCall(id="2", name="cancel_reservation", arguments=dict(cancel.arguments))
    assert cancel.compare_with_tool_call(empty) and not matches(cancel, empty)
    assert matches(cancel, right)
    credit = [partial_actions(cut_short("14", *calls)) for calls in ((empty,), (right,), (right, empty))]
    assert credit == [0.0, 0.5, 0.5]


def test_db_only_is_taus_database_check_alone(llm):
    """db_check: 1 when the final DB is the gold one, whatever else the task's basis asks; where
    tau2 ran no DB check (an episode cut short) tau2's reward: tau2's own reward on basis [DB]."""
    from tau2.data_model.simulation import DBCheck, RewardInfo

    spec = reward_of("db_only")
    for script, task in (("gold", "7"), ("wrong", "7"), ("wrong", "14")):
        info = play(workflow(llm, script, spec), llm, task).info
        on_db = play(workflow(llm, script, reward_basis=["DB"]), llm, task).info
        assert info.shaped_reward == on_db.reward == on_db.shaped_reward, (script, task)
    db_only_passed = RewardInfo(reward=0.0, db_check=DBCheck(db_match=True, db_reward=1.0))  # COMMUNICATE failed
    assert (db_check(cut_short("7", reward_info=db_only_passed)), db_check(cut_short("7"))) == (1.0, 0.0)


def test_format_strict_costs_a_malformed_call_all_a_solved_episode_earns(llm):
    spec = reward_of("format_strict")
    assert spec.format_penalty == 1.0 and [t._target_ for t in spec.terms] == [f"{TERMS}.tau2"]
    rewards = list(play(workflow(llm, "malformed", spec), llm).info.completion_rewards.values())
    assert rewards == [-1.0] * 3 + [0.0] * 5 + [1.0]


def user_term_module(root: Path, name: str) -> None:
    """A researcher's own term, in a module of its own."""
    (root / f"{name}.py").write_text(
        "def step_cost(context, per_step=0.01):\n"
        "    return -per_step * len(context.simulation.messages)\n"
        "def no_context():\n"
        "    return 1.0\n"
    )


def test_a_users_own_term_is_one_module_and_one_override(cli, llm, tmp_path, monkeypatch):
    user_term_module(tmp_path, "my_terms")
    monkeypatch.syspath_prepend(str(tmp_path))  # PYTHONPATH, for a process of its own
    terms = (f"reward.terms=[{{_target_: {TERMS}.tau2}}, "
             "{_target_: my_terms.step_cost, weight: 0.5, args: {per_step: 0.02}}]")
    result = cli("dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp", terms, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.split()[:2] == ["reward", "tau2"]]  # the plan's
    assert "1 x tau2 + 0.5 x step_cost({'per_step': 0.02}); format penalty 0.1" in line

    spec = dataclasses.asdict(compose([USER_SIM, terms]).config.reward)
    info = play(workflow(llm, "gold", spec), llm).info
    steps = len(info.messages)
    assert [t["value"] for t in info.reward_terms] == pytest.approx([1.0, -0.02 * steps])
    assert info.shaped_reward == pytest.approx(1.0 - 0.5 * 0.02 * steps)


@pytest.mark.parametrize("term,problem", [
    ("{_target_: no_such_pkg.terms.fn, weight: 0.5}",
     "reward.terms[0]._target_='no_such_pkg.terms.fn': cannot be imported (ModuleNotFoundError"),
    ("{_target_: bad_terms.missing, weight: 0.5}",
     "reward.terms[0]._target_='bad_terms.missing': cannot be imported (AttributeError"),
    ("{_target_: bad_terms.no_context}",
     "reward.terms[0]._target_='bad_terms.no_context': cannot be called as fn(context, **args) -> float"),
    ("{_target_: bad_terms.step_cost, args: {per_turn: 1}}",
     ("reward.terms[0]._target_='bad_terms.step_cost': cannot be called as fn(context, **args) -> float with "
      "args {'per_turn': 1} (step_cost(context, per_step=0.01): got an unexpected keyword argument 'per_turn')")),
])
def test_a_term_that_does_not_fit_is_refused_with_one_message(cli, tmp_path, monkeypatch, term, problem):
    user_term_module(tmp_path, "bad_terms")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("dry_run=true", USER_SIM, f"cluster.fileroot={tmp_path}/exp", f"reward.terms=[{term}]", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {problem}"), result.stderr
    assert [x.split(":")[0].strip() for x in lines[1:]] == ["valid", "fix"]
    assert not (tmp_path / "exp").exists()


def test_a_term_that_fails_while_training_is_named(tmp_path, monkeypatch):
    from tau2train.rollout.shaping import RewardTermFailed
    from tau2train.schemas import RewardTerm

    (tmp_path / "odd_terms.py").write_text("def words(context):\n    return 'many'\n"
                                           "def broken(context):\n    return 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, said in (("words", "returned 'many', not a finite number"), ("broken", "raised ZeroDivisionError")):
        shaping = Shaping.of(RewardSpec(terms=[RewardTerm(_target_=f"odd_terms.{name}")]))
        with pytest.raises(RewardTermFailed, match=f"reward term odd_terms.{name} {said}"):
            shaping.episode(cut_short("7"))


def test_a_key_that_moved_is_refused_naming_its_new_key(cli, tmp_path):
    """(Before AReaL loads: tests/test_key_index.py.)"""
    result = cli("econfig.turn_discount=0.9", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: econfig.turn_discount='0.9': moved to reward.turn_discount (the reward group holds the reward's settings)",
        "  valid: reward.turn_discount",
        "  fix:   write reward.turn_discount=0.9",
    ]


def test_the_group_filter_judges_by_the_shaped_reward_or_by_taus(llm):
    """Two "wrong" episodes of airline task 7 under reward=partial_actions: tau2's reward 0
    each, shaped 0.3 x 4/5 = 0.24 each. A filter dropping groups under 0.1 keeps the group on
    the shaped reward (the default) and drops it on tau2's (group_filter.judge_by=tau2)."""
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext

    wf = workflow(llm, "wrong", reward_of("partial_actions"))

    async def group(task_id: int, keep: GroupFilter) -> bool:
        workflow_context.set(WorkflowContext(is_eval=False, task_id=task_id))
        results = await asyncio.gather(*[wf.run({"task_id": "7", "split": "train"}, base_url=llm.base_url,
                                                api_key="k") for _ in range(2)])
        return keep({"rewards": [r for rewards in results for r in rewards.values()]})

    previous = workflow_context.get()
    try:
        shaped = asyncio.run(group(31, GroupFilter(min_mean_reward=0.1)))
        tau2 = asyncio.run(group(32, GroupFilter(min_mean_reward=0.1, judge_by="tau2")))
        # a group baseline subtracts the shaped mean (the rows' own) whichever reward judges
        workflow_context.set(WorkflowContext(is_eval=False, task_id=33))
        record_episode_reward(0.2, 0.0)
        record_episode_reward(0.4, 1.0)
        rows = {"rewards": [0.2, 0.4]}
        kept = GroupFilter(max_mean_reward=0.6, judge_by="tau2", baseline="group")(rows)
    finally:
        workflow_context.set(previous)
    assert (shaped, tau2, kept) == (True, False, True)
    assert rows["rewards"] == pytest.approx([-0.1, 0.1])


def test_training_stats_log_taus_reward_beside_the_shaped_one(llm):
    from areal.infra import workflow_context
    from areal.infra.workflow_context import WorkflowContext
    from areal.utils import stats_tracker

    wf = workflow(llm, "wrong", reward_of("partial_actions"))
    previous = workflow_context.get()
    stats_tracker.get("rollout").export(reset=True)
    try:
        workflow_context.set(WorkflowContext(is_eval=False, task_id=41))
        asyncio.run(wf.run({"task_id": "7", "split": "train"}, base_url=llm.base_url, api_key="k"))
    finally:
        workflow_context.set(previous)
    stats = stats_tracker.get("rollout").export(reset=True)
    assert stats["rollout/airline/pass^1"] == stats["rollout/airline/reward"] == 0.0
    assert stats["rollout/airline/shaped_reward"] == pytest.approx(0.24)


def test_evaluation_scores_taus_own_reward_whatever_was_trained(tmp_path):
    """mode=eval's workflow (launch/eval_episodes.py) is given no reward: its episodes are scored
    with reward=tau2, and its report reads tau2's RewardInfo (simulation.reward_info)."""
    from tau2train.launch.eval_episodes import _workflow

    exp = compose(["mode=eval", "reward=partial_actions", "eval.agent_base_url=http://h:1/v1", USER_SIM]).config
    assert _workflow(exp, tmp_path).shaping == Shaping.of(tau2_reward())


def test_a_reward_sweep_is_two_points_with_a_reward_column(cli, tmp_path):
    result = cli("-m", "dry_run=true", "reward=tau2,partial_actions", USER_SIM, f"cluster.fileroot={tmp_path}/exp",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip().splitlines()
    assert lines[-4].startswith("Sweep of 2 points (dry run")
    assert lines[-3].split()[:2] == ["#", "reward"]
    assert [x.split()[:3] for x in lines[-2:]] == [["1", "tau2", "tau2-qwen3-1.7b-airline/rewardtau2"],
                                                  ["2", "partial_actions", "tau2-qwen3-1.7b-airline/rewardpartial_actions"]]
    experiment = tmp_path / "exp" / "tau2-qwen3-1.7b-airline"
    assert sorted(p.parent.name for p in experiment.glob("*/areal_config.yaml")) == ["rewardpartial_actions", "rewardtau2"]


def test_the_sweep_report_has_a_reward_column_and_compares_taus_reward(tmp_path):
    """Each run's job.json records its reward choice (a point that left it at the default too);
    mean and final are tau2's reward, not the shaped one, so points compare."""
    from tau2train.reports.sweep import main
    from tau2train.rollout.trajectories import write_run_info
    from tau2train.schemas import RunInfo

    sweep = tmp_path / "tau2-qwen3-1.7b-airline"
    for trial, choice, shaped in (("a", "tau2", 1.0), ("b", "partial_actions", 0.24)):
        run = sweep / trial
        run.mkdir(parents=True)
        overrides = [f"trial_name={trial}"] + ([f"reward={choice}"] if choice != "tau2" else [])
        (run / "job.json").write_text(json.dumps({"state": "completed", "mode": "train", "trial_name": trial,
                                                  "overrides": overrides, "train_split": "train", "reward": choice}))
        write_run_info(run / "generated", RunInfo(task_id="7", split="train", reward=0.0, shaped_reward=shaped))
    result = in_process(str(sweep), cwd=tmp_path, main=main)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    head = next(i for i, x in enumerate(table) if x.startswith("trial "))
    assert table[head].split()[:3] == ["trial", "reward", "state"]
    assert [x.split()[:2] + x.split()[5:6] for x in table[head + 1:head + 3]] == [
        ["a", "tau2", "0.000"], ["b", "partial_actions", "0.000"]]
    assert "mean tau2 reward" in result.stdout


def test_a_run_records_its_reward_choice():
    from tau2train.launch.jobs import run_description

    assert run_description(compose(["reward=db_only", USER_SIM]))["reward"] == "db_only"
