"""Every bad input gets one message naming the key, the value, what is valid and the fix."""

from __future__ import annotations

import copy
import functools
import getpass

import pytest
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked

# (overrides, key the message names, words the message must contain)
CASES = {
    "unknown model choice": (
        ["model=qwen3_9b"], "model",
        ["no such model choice", "qwen3_1_7b, qwen3_235b_a22b, qwen3_30b_a3b, qwen3_8b, tiny_qwen3", "did you mean 'qwen3_8b'"],
    ),
    "unknown domain choice": (
        ["domain=banking"], "domain", ["no such domain choice", "airline, mock, retail, telecom"],
    ),
    "a fileroot with a space": (
        ["cluster.fileroot=/data/my runs/tau2"], "cluster.fileroot",
        ["holds a space", "unquoted shell command", "without spaces (dots are fine)"],
    ),
    "unknown key": (
        ["econfig.max_step=3"], "econfig.max_step",
        ["'econfig' has no 'max_step'", "max_steps", "did you mean 'max_steps'"],
    ),
    "unknown key added with +": (
        ["+actor.optimizer.lrr=1"], "actor.optimizer.lrr", ["has no 'lrr'", "did you mean 'lr'"],
    ),
    "new entry in a free-form mapping without +": (
        ["econfig.user_llm_args.top_p=0.9"], "econfig.user_llm_args.top_p",
        ["free-form mapping", "+econfig.user_llm_args.top_p=0.9"],
    ),
    "value of the wrong type": (
        ["actor.optimizer.lr=fast"], "actor.optimizer.lr", ["could not be converted to Float"],
    ),
    "unknown flag": (
        ["--resolve"], "flag", ["not a flag tau2train takes here", "--cfg job|hydra|all [--resolve]"],
    ),
    "malformed override": (
        ["model"], "override", ["key=value"],
    ),
    "allocation AReaL's parser rejects": (
        ["allocation.rollout=sglang:x7"], "allocation.rollout",
        ["AReaL's allocation parser rejects it", "n1_sglang_d6_archon_d2"],
    ),
    "training backend in the rollout role": (
        ["allocation.rollout=archon:d6"], "allocation.rollout", ["cannot serve the rollout role", "sglang, vllm"],
    ),
    "GPUs of the allocation differ from the cluster's": (
        ["allocation.rollout=sglang:d5"], "allocation",
        ["5 rollout + 2 trainer = 7 GPUs", "cluster.n_nodes=1 x cluster.n_gpus_per_node=8 = 8"],
    ),
    "multi-node layout on cluster=local": (
        ["model=qwen3_8b"], "cluster.n_nodes", ["planned for 3 nodes", "cluster=slurm"],
    ),
    "trainer engine the model is not tuned for": (
        ["model=qwen3_30b_a3b", "allocation=n1_sglang_d6_archon_d2"], "allocation.actor",
        ["model.engine=megatron", "n10_sglang_d4t8_megatron_d1p12t4_d1p12e4, n8_sglang_d8t4_megatron_d4p4t2_d2p4e4"],
    ),
    "tensor parallel size that does not divide the heads": (
        ["allocation.rollout=sglang:d2t3"], "allocation.rollout",
        ["tensor parallel size 3 does not divide the 16 attention heads"],
    ),
    "expert parallelism on a dense model": (
        ["model.engine=megatron", "allocation.rollout=sglang:d6", "allocation.actor='megatron:(attn:d2|ffn:e2)'"],
        "allocation.actor", ["expert parallel size 2 on a dense model"],
    ),
    "expert parallel size that does not divide the experts": (
        ["model=qwen3_30b_a3b", "allocation.n_nodes=1", "allocation.rollout=sglang:d5",
         "allocation.actor='megatron:(attn:d3|ffn:e3)'"],
        "allocation.actor", ["expert parallel size 3 does not divide the 128 experts"],
    ),
    "more pipeline stages than layers": (
        ["allocation.n_nodes=5", "allocation.rollout=sglang:d8", "allocation.actor=archon:p32", "SLURM"],
        "allocation.actor", ["pipeline parallel size 32 exceeds the 28 layers"],
    ),
    "a turn longer than the episode": (
        ["gconfig.max_new_tokens=20000"], "gconfig.max_new_tokens", ["gconfig.max_tokens=16384", "<= 16384"],
    ),
    "micro-batch smaller than one episode": (
        ["actor.mb_spec.max_tokens_per_mb=1000"], "actor.mb_spec.max_tokens_per_mb", [">= 16384"],
    ),
    "domain tau2 does not know": (
        ["econfig.domain=banking"], "econfig.domain", ["tau2's registry has no such domain", "airline", "telecom"],
    ),
    "task split tau2 does not know": (
        ["domain.valid_split=dev"], "valid_dataset.split",
        ["tau2's airline domain has no such task split", "base, test, train, all"],
    ),
    "no user simulator": (
        ["econfig.user_llm_base_url=null"], "econfig.user_llm_base_url",
        ["no server URL is set", "econfig.solo_mode=true"],
    ),
    "slurm fileroot left as placeholder": (
        ["cluster=slurm"], "cluster.fileroot", ["is a placeholder", "/path/to/shared/experiments"],
    ),
    "slurm name_resolve left as placeholder": (
        ["SLURM", "cluster.name_resolve.nfs_record_root=/path/to/name_resolve"],
        "cluster.name_resolve.nfs_record_root", ["is a placeholder"],
    ),
    "slurm relative fileroot": (
        ["SLURM", "cluster.fileroot=experiments"], "cluster.fileroot", ["must be an absolute path"],
    ),
    "multi-node slurm on node-local /tmp": (
        ["model=qwen3_8b", "SLURM", "cluster.fileroot=/tmp/exp"], "cluster.fileroot",
        ["/tmp is local to each node; 3 nodes need shared storage"],
    ),
    "experiment name with '_'": (
        ["experiment_name=tau2_rl"], "experiment_name", ["AReaL forbids '_' and '/'", "experiment_name=tau2-rl"],
    ),
    "reward basis tau2 does not have": (
        ["econfig.reward_basis=[DB,SPEED]"], "econfig.reward_basis",
        ["'SPEED' is not a tau2 reward type", "DB, ENV_ASSERTION, NL_ASSERTION, ACTION, COMMUNICATE"],
    ),
    "eval without an agent endpoint": (
        ["mode=eval"], "eval.agent_base_url", ["needs the agent endpoint", "$OPENAI_API_KEY"],
    ),
    "eval endpoint that is not a URL": (
        ["mode=eval", "eval.agent_base_url=localhost:8000"], "eval.agent_base_url", ["not an http(s) URL"],
    ),
    "user simulator URL without a scheme": (
        ["econfig.user_llm_base_url=localhost:8000"], "econfig.user_llm_base_url",
        ["is not an http(s) URL (no http:// or https:// in front)", "fix:   set econfig.user_llm_base_url=http://localhost:8000"],
    ),
    "user simulator URL without a scheme in eval": (
        ["mode=eval", "eval.agent_base_url=http://h:1/v1", "econfig.user_llm_base_url=localhost:8000"],
        "econfig.user_llm_base_url", ["is not an http(s) URL", "the OpenAI-compatible base URL of the user simulator"],
    ),
    "judge URL without a scheme": (
        ["econfig.nl_judge.base_url=judge:1/v1"], "econfig.nl_judge.base_url",
        ["is not an http(s) URL (no http:// or https:// in front)", "fix:   set econfig.nl_judge.base_url=http://judge:1/v1"],
    ),
    "eval with no trials": (
        ["mode=eval", "eval.agent_base_url=http://h:1/v1", "eval.num_trials=0"], "eval.num_trials",
        ["must be at least 1"],
    ),
    # a declared choice and a declared range refused in each group (and the root's own sections)
    "model: engine AReaL does not have": (
        ["model.engine=deepspeed"], "model.engine", ["not one of the choices", "archon, megatron, fsdp"],
    ),
    "model: no layers": (["model.num_layers=0"], "model.num_layers", ["must be at least 1", "valid: >= 1"]),
    "domain: split tau2 does not have": (
        ["domain.train_split=dev"], "train_dataset.split", ["tau2's airline domain has no such task split"],
    ),
    "domain: no steps": (["domain.max_steps=0"], "domain.max_steps", ["must be at least 1"]),
    "cluster: name-resolve backend AReaL does not have": (
        ["cluster.name_resolve.type=zookeeper"], "cluster.name_resolve.type", ["nfs, etcd3, ray"],
    ),
    "cluster: container runtime the workers cannot use": (
        ["SLURM", "slurm.container_type=docker"], "slurm.container_type", ["not one of the choices", "none, apptainer"],
    ),
    "cluster: a Slurm job without memory": (["SLURM", "slurm.mem_gb=0"], "slurm.mem_gb", ["must be at least 1"]),
    "cluster: negative GPUs per node": (
        ["cluster.n_gpus_per_node=-8"], "cluster.n_gpus_per_node", ["must be at least 0"],
    ),
    "allocation: inference backend in the trainer role": (
        ["allocation.actor=sglang:d2"], "allocation.actor", ["cannot serve the actor role", "archon, megatron, fsdp"],
    ),
    "allocation: no nodes": (["allocation.n_nodes=0"], "allocation.n_nodes", ["must be at least 1"]),
    "tracking: backend tau2train does not have": (
        ["tracking=none", "tracking.backend=mlflow"], "tracking.backend", ["not one of the choices", "wandb, none"],
    ),
    "user_sim: port out of range": (["user_sim.port=0"], "user_sim.port", ["must lie in [1, 65535]"]),
    "reward: discount above 1": (
        ["reward.turn_discount=1.5"], "reward.turn_discount", ["must lie in [0, 1]", "fix:   change reward.turn_discount: it must lie in [0, 1]"],
    ),
    "reward: negative penalty": (
        ["reward.format_penalty=-0.1"], "reward.format_penalty", ["must be at least 0"],
    ),
    "reward: no scaling": (["reward.scaling=0"], "reward.scaling", ["must be greater than 0"]),
    "reward: unknown choice": (
        ["reward=shaped"], "reward", ["no such reward choice", "db_only, format_strict, partial_actions, tau2"],
    ),
    "reward: a key that moved to the reward group": (
        ["econfig.invalid_format_penalty=0.2"], "econfig.invalid_format_penalty",
        ["moved to reward.format_penalty", "fix:   write reward.format_penalty=0.2"],
    ),
    "reward: AReaL's scaling set apart from the reward group's": (
        ["actor.reward_scaling=5"], "actor.reward_scaling",
        ["differs from reward.scaling=10.0", "fix:   set reward.scaling=5.0 instead of actor.reward_scaling"],
    ),
    "reward: no term": (["reward.terms=[]"], "reward.terms", ["no term", "reward=<choice>"]),
    "reward: a term's weight that is not finite": (
        ["reward.terms=[{_target_: tau2train.rollout.reward_terms.tau2, weight: inf}]"], "reward.terms[0].weight",
        ["not a finite number"],
    ),
    "group_filter: judged by a reward there is not": (
        ["group_filter.judge_by=raw"], "group_filter.judge_by", ["not one of the choices", "shaped, tau2"],
    ),
    "group_filter: mean reward above 1": (
        ["group_filter.max_mean_reward=2"], "group_filter.max_mean_reward", ["must lie in [0, 1]"],
    ),
    "actor.adv_norm: AReaL's per-group slices of rows, one row per completion": (
        ["actor.adv_norm.mean_level=group", "group_filter.min_episodes=8"], "actor.adv_norm.mean_level",
        ["fixed slices of gconfig.n_samples=8 rows", "one row per completion",
         "actor.adv_norm.mean_level=batch actor.adv_norm.std_level=batch, and group_filter.baseline=group"],
    ),
    "a key under a node that is null (actor.reward_norm)": (
        ["actor.reward_norm.mean_level=batch"], "actor.reward_norm.mean_level",
        ["'actor.reward_norm' is null in the composed config", "an experiment YAML",
         "reward_norm: {mean_level: batch, ...}"],
    ),
    "actor.adv_norm: a per-group std": (
        ["actor.adv_norm.std_level=group"], "actor.adv_norm.std_level",
        ["fixed slices of gconfig.n_samples=8 rows"],
    ),
    "model.path: a tiny Qwen3 width that is not built": (
        ["experiment=cpu_miniature", "model.path=${tau2train.tiny_qwen:96}"], "model.path",
        ["built locally in these widths only", "valid: ${tau2train.tiny_qwen:64}, ${tau2train.tiny_qwen:128}",
         "fix:   model.path='${tau2train.tiny_qwen:128}'"],
    ),
    "group_filter: a baseline tau2train does not have": (
        ["group_filter.baseline=batch"], "group_filter.baseline", ["not one of the choices", "group"],
    ),
    "trainer: temperature out of range": (
        ["trainer.valid_temperature=3"], "trainer.valid_temperature", ["must lie in [0, 2]"],
    ),
    "eval: no concurrency": (
        ["mode=eval", "eval.agent_base_url=http://h:1/v1", "eval.max_concurrency=0"], "eval.max_concurrency",
        ["must be at least 1"],
    ),
    "AReaL's gconfig: an empty GRPO group": (["gconfig.n_samples=0"], "gconfig.n_samples", ["must be at least 1"]),
    "AReaL's optimizer type": (
        ["actor.optimizer.type=adamw"], "actor.optimizer.type", ["adam, sgd, adam_bf16"],
    ),
    "eval on a split tau2 does not know": (
        ["mode=eval", "eval.agent_base_url=http://h:1/v1", "eval.split=dev"], "eval.split",
        ["tau2's airline domain has no such task split", "set eval.split"],
    ),
    "eval scored on an unknown basis": (
        ["mode=eval", "eval.agent_base_url=http://h:1/v1", "eval.reward_basis=[db]"], "eval.reward_basis",
        ["'db' is not a tau2 reward type"],
    ),
    "unknown mode": (
        ["mode=serve"], "mode", ["not one of the choices", "train, sft, eval"],
    ),
    "unknown tracking mode (AReaL's own check of the stats logger it feeds)": (
        ["tracking.mode=ofline"], "config", ["Invalid wandb mode: 'ofline'", "online, offline, disabled"],
    ),
    "unknown tracking mode without wandb": (
        ["tracking=none", "tracking.mode=ofline"], "tracking.mode", ["online, offline, disabled"],
    ),
    "trial name with '-'": (
        ["trial_name=run-1"], "trial_name", ["AReaL forbids '-' and '/'", "trial_name=run_1"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_clear_message(case, tmp_path):
    overrides, key, words = CASES[case]
    expanded = []
    for override in overrides:
        expanded += slurm_overrides(tmp_path) if override == "SLURM" else [override]
    has_url = any(o.startswith("econfig.user_llm_base_url") for o in expanded)
    with pytest.raises(ConfigError) as caught:
        checked(compose(expanded + ([] if has_url else [USER_SIM])))
    error = caught.value
    message = str(error)
    assert error.key == key, message
    assert message.startswith(f"error: {key}="), message
    assert "fix:" in message, message
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"


def test_secret_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "s3cr3t-value-123456")
    with pytest.raises(ConfigError) as caught:
        checked(compose([USER_SIM, "+econfig.user_llm_args.api_key=${oc.env:WANDB_API_KEY}"]))
    message = str(caught.value)
    assert caught.value.key == "econfig.user_llm_args.api_key"
    assert "$WANDB_API_KEY" in message
    assert "s3cr3t-value-123456" not in message


def test_areal_dataclass_validation_is_reported():
    with pytest.raises(ConfigError) as caught:
        compose([USER_SIM, "total_train_epochs=0"])
    assert "total_train_epochs must be positive" in str(caught.value)


def bad_values(declarations) -> list:
    """Values outside a field's declared choices / range."""
    from tau2train.schemas import CHOICES, RANGE

    bad = []
    if CHOICES in declarations:
        bad.append("not_a_choice")
    allowed = declarations.get(RANGE)
    if allowed is not None:
        if allowed.low is not None:
            bad.append(allowed.low if allowed.low_open else allowed.low - 1)
        if allowed.high is not None:
            bad.append(allowed.high if allowed.high_open else allowed.high + 1)
    return bad


def with_value(exp, key: str, value):
    """A copy of the composed config with one field (dotted key) set to `value`."""
    bad = copy.deepcopy(exp)
    *path, leaf = key.split(".")
    node = functools.reduce(getattr, path, bad)
    setattr(node, leaf, value)
    return bad


def test_every_declared_choice_and_range_is_enforced(tmp_path):
    """Each tau2train field declaring choices or a range, and each AReaL field with a declared
    range, refuses a value outside them, naming that key: on the command line before AReaL
    loads (the key index), and in the composed config (its values as composition types them:
    the composition of such values is checked in tests/test_key_index.py)."""
    from tau2train.config.declared import check_declared, declared_fields
    from tau2train.config.early import answered_early
    from tau2train.schemas import INHERITED_RANGES

    ours = ("mode", "econfig.", "group_filter.", "min_dataset_size", "model.", "domain.", "allocation.",
            "slurm.", "eval.", "trainer.", "tracking.", "user_sim.")
    base = [USER_SIM, *slurm_overrides(tmp_path), "tracking=none"]
    exp = compose(base).config
    refused = 0
    for key, _, declarations in declared_fields(exp):
        if not (key.startswith(ours) or key in INHERITED_RANGES):
            continue
        for value in bad_values(declarations):
            with pytest.raises(ConfigError) as early:
                answered_early([*base, f"{key}={value}"])
            assert early.value.key == key, (key, value, str(early.value))
            with pytest.raises(ConfigError) as caught:
                check_declared(with_value(exp, key, value))
            assert caught.value.key == key, (key, value, str(caught.value))
            refused += 1
    assert refused >= 40


CHECKPOINT_CASES = {
    # (overrides, key the message names, words the message must contain); {run}: a run's
    # checkpoint folder holding steps 1 and 3, {model}: one model folder
    "missing checkpoint folder": (
        ["eval.checkpoint={run}/nope"], "eval.checkpoint", ["does not exist", "a training run's directory"],
    ),
    "a step that was not saved": (
        ["eval.checkpoint={run}", "eval.checkpoint_step=2"], "eval.checkpoint_step",
        ["no checkpoint of step 2", "saved steps: 1, 3", "latest, 1, 3 or 0 (the base model)"],
    ),
    "a step that is no number": (
        ["eval.checkpoint={run}", "eval.checkpoint_step=last"], "eval.checkpoint_step",
        ["is not a step", "latest, or a global step"],
    ),
    "a step of one model folder": (
        ["eval.checkpoint={model}", "eval.checkpoint_step=3"], "eval.checkpoint_step",
        ["is one model folder"],
    ),
    "an endpoint and a checkpoint": (
        ["eval.checkpoint={model}", "eval.agent_base_url=http://h:1/v1"], "eval.agent_base_url",
        ["scores one or the other"],
    ),
    "this run has saved nothing": (
        ["eval.checkpoint_step=latest", "cluster.fileroot={root}/empty"], "eval.checkpoint_step",
        ["does not exist (this run's checkpoint folder: has it saved one yet?)"],
    ),
    "a server whose GPUs do not add up": (
        ["eval.checkpoint={model}", "eval.server.tp=2"], "eval.server.gpus", ["tp=2", "eval.server.tp x eval.server.dp = 2"],
    ),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_a_checkpoint_evaluation_that_cannot_start_is_refused(case, tmp_path):
    from areal.utils.saver import Saver

    for step in (1, 3):
        saved = Saver.get_model_save_path("exp", "t0", str(tmp_path), 0, step - 1, step)
        open(f"{saved}/config.json", "w").write("{}")
    run = f"{tmp_path}/checkpoints/{getpass.getuser()}/exp/t0"
    overrides, key, words = CHECKPOINT_CASES[case]
    overrides = [o.format(run=run, model=saved, root=tmp_path) for o in overrides]
    with pytest.raises(ConfigError) as caught:
        checked(compose(["mode=eval", USER_SIM, *overrides]))
    message = str(caught.value)
    assert caught.value.key == key, message
    assert "fix:" in message, message
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"
