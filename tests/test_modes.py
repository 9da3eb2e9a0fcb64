"""Modes in one table (tau2train.launch.modes), and validation made once: the value it returns
is what the plan and the run read, even when the files it looked at change afterwards."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from helpers.areal_tau2 import write_dataset
from helpers.checkpoints import save_checkpoints
from helpers.cli import USER_SIM

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.evaluate import eval_plan
from tau2train.launch.modes import MODES, checked
from tau2train.launch.plan import render_train_plan
from tau2train.schemas import MODE_FACTS, Mode


def test_every_mode_is_one_entry_and_has_its_facts():
    assert set(MODES) == set(Mode) == set(MODE_FACTS)
    assert [m.value for m in Mode] == ["train", "sft", "eval", "recipe"]


def test_the_served_checkpoint_is_the_step_validation_found(tmp_path):
    """eval.checkpoint_step=latest resolves once: a checkpoint saved after validation is not
    the one the plan names (nor the one the run serves: both read Checked.served)."""
    composed = compose(["mode=eval", USER_SIM, f"cluster.fileroot={tmp_path}", "eval.checkpoint_step=latest"])
    exp = composed.config
    with pytest.raises(ConfigError, match="does not exist"):  # nothing saved yet
        checked(composed)
    save_checkpoints(tmp_path, exp.experiment_name, exp.trial_name, [1, 2])
    job = checked(composed)
    assert (job.served.step, job.scored) == (2, None)
    save_checkpoints(tmp_path, exp.experiment_name, exp.trial_name, [3])
    assert "(step 2)" in eval_plan(job) and "step3" not in eval_plan(job)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.served = None


def test_the_plan_reads_the_rows_validation_loaded(tmp_path):
    """data=areal_tau2: the RL file is read by validation only; the plan of the checked run
    renders from what it loaded, even with the file gone."""
    folder = write_dataset(tmp_path / "AReaL-tau2-data")
    job = checked(compose([USER_SIM, "data=areal_tau2", f"data.path={folder}", "data.domains=[airline,telecom]"]))
    shutil.rmtree(folder)
    plan = render_train_plan(job, None)
    assert "8 RL rows (airline 5, telecom 3)" in plan
    assert job.domains == ("airline", "telecom")
    assert [e.key for e in job.user_sims] == ["econfig.user_llm_base_url"]


def test_the_recipe_plans_its_stages_and_refuses_what_it_cannot_run(tmp_path):
    """mode=recipe (experiment=cpu_miniature): the plan names each stage's command, the tasks it
    plays and where everything goes; it runs only on this machine, from local weights."""
    base = ["experiment=cpu_miniature", "trial_name=t0", f"cluster.fileroot={tmp_path}/exp"]
    plan = MODES[Mode.RECIPE].plan(checked(compose(base)))
    assert "mode=sft data=areal_tau2" in plan and "mode=train actor.path=<SFT checkpoint>" in plan
    assert "trained and evaluated on the same tasks" in plan and "tau2train-compare" in plan
    assert f"{tmp_path}/exp/tau2-cpu-miniature/t0/recipe" in plan
    for extra, key in (
        (["cluster=slurm", f"cluster.name_resolve.nfs_record_root={tmp_path}/nr"], "launcher"),
        ([f"model.path={tmp_path}/no-such-model"], "actor.path"),
        (["domain.tasks=[no_such_task]"], "domain.tasks"),
        (["domain=airline"], "domain"),  # the rule-based user simulator plays mock only
        (["domain.tasks=[create_task_1_nl_eval]"], "domain.tasks"),  # a task it leaves out
    ):
        with pytest.raises(ConfigError) as error:
            checked(compose([*base, *extra]))
        assert error.value.key == key, extra


def test_an_endpoints_evaluation_is_filed_under_the_evaluated_model(tmp_path):
    """mode=eval of an endpoint: its run directory, as the plan names it, is the evaluated
    model's (eval.agent_model, in the characters AReaL allows in a name), not the model group's;
    a served checkpoint's evaluation stays in its training run's directory."""
    endpoint = ["mode=eval", USER_SIM, f"cluster.fileroot={tmp_path}", "eval.agent_base_url=http://h:1/v1"]
    for overrides, experiment in (
        (["eval.agent_model=Qwen/Qwen3-8B"], "tau2-Qwen-Qwen3-8B-airline"),
        (["eval.agent_model=gpt-4.1_mini", "domain=retail"], "tau2-gpt-4.1-mini-retail"),
    ):
        plan = eval_plan(checked(compose([*endpoint, *overrides])))
        results = f"{tmp_path}/{experiment}/trial0/eval/<domain>-<split>-<model>-<time>/"
        assert f"  results     {results}" in plan, plan
    save_checkpoints(tmp_path, "tau2-qwen3-1.7b-airline", "trial0", [1])
    served = checked(compose(["mode=eval", USER_SIM, f"cluster.fileroot={tmp_path}",
                              "eval.checkpoint_step=latest", "eval.agent_model=Qwen/Qwen3-8B"]))
    assert served.config.run_dir == f"{tmp_path}/tau2-qwen3-1.7b-airline/trial0"
    trained = compose([USER_SIM, f"cluster.fileroot={tmp_path}", "eval.agent_base_url=http://h:1/v1",
                       "eval.agent_model=Qwen/Qwen3-8B"]).config
    assert trained.experiment_name == trained.saver.experiment_name == "tau2-qwen3-1.7b-airline"
