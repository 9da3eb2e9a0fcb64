"""Every choice of every group composes into the typed config AReaL's trainer accepts."""

from __future__ import annotations

import itertools

import pytest
from areal.api.cli_args import PPOConfig as ArealPPOConfig
from helpers.cli import USER_SIM, cluster_overrides, slurm_overrides

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.config.overrides import group_options
from tau2train.launch.modes import checked
from tau2train.schemas import EnvConfig, PPOConfig

MODELS = group_options("model")
DOMAINS = group_options("domain")
CLUSTERS = group_options("cluster")


def test_every_group_has_its_choices():
    assert MODELS == ["qwen3_1_7b", "qwen3_235b_a22b", "qwen3_30b_a3b", "qwen3_8b", "tiny_qwen3"]
    assert DOMAINS == ["airline", "mock", "retail", "telecom"]
    assert CLUSTERS == ["local", "ray", "slurm"]
    assert len(group_options("allocation")) == 5
    assert group_options("tracking") == ["none", "wandb"]
    assert group_options("user_sim") == ["qwen2_5_72b", "qwen2_5_7b", "rule_based"]
    assert group_options("data") == ["areal_tau2", "tau2"]
    assert group_options("experiment") == ["cpu_miniature", "sea_30b_a3b"]
    assert group_options("reward") == ["db_only", "format_strict", "partial_actions", "tau2"]


# each model's own allocation (conf/model/*.yaml's `override /allocation`)
DEFAULT_ALLOCATION = {
    "qwen3_1_7b": "n1_sglang_d6_archon_d2",
    "qwen3_235b_a22b": "n10_sglang_d4t8_megatron_d1p12t4_d1p12e4",
    "qwen3_30b_a3b": "n8_sglang_d8t4_megatron_d4p4t2_d2p4e4",
    "qwen3_8b": "n3_sglang_d16_archon_d8",
    "tiny_qwen3": "cpu_d1_fsdp_d1",
}


@pytest.mark.parametrize("model,domain,cluster", list(itertools.product(MODELS, DOMAINS, CLUSTERS)))
def test_every_combination_composes_and_validates(model, domain, cluster, tmp_path):
    extra = cluster_overrides(cluster, tmp_path)
    composed = compose([f"model={model}", f"domain={domain}", f"cluster={cluster}", USER_SIM, *extra])
    exp = composed.config
    assert isinstance(exp, PPOConfig) and isinstance(exp, ArealPPOConfig)
    assert isinstance(exp.econfig, EnvConfig)
    assert exp.econfig.domain == domain
    assert composed.choices == {"model": model, "domain": domain, "data": "tau2", "cluster": cluster,
                                "allocation": DEFAULT_ALLOCATION[model], "tracking": "wandb",
                                "user_sim": "qwen2_5_72b", "reward": "tau2", "experiment": "None"}
    if cluster == "local" and exp.cluster.n_nodes > 1:
        # multi-node reference layouts cannot run on one machine: refused with advice
        with pytest.raises(ConfigError) as error:
            checked(composed)
        assert error.value.key == "cluster.n_nodes"
        assert "cluster=slurm" in error.value.fix
    else:
        layout = checked(composed).layout
        assert layout.n_gpus == exp.cluster.n_nodes * exp.cluster.n_gpus_per_node


@pytest.mark.parametrize("reward", group_options("reward"))
def test_every_reward_choice_composes_and_validates(reward, tmp_path):
    for mode in (["mode=train"], ["mode=recipe", "experiment=cpu_miniature", "trial_name=t0"]):
        composed = compose([f"reward={reward}", "reward.turn_discount=0.9", USER_SIM, *mode])
        exp = checked(composed).config
        assert composed.choices["reward"] == reward
        assert exp.reward.terms and all(callable(term.function()) for term in exp.reward.terms)
        # AReaL's own reward keys read the reward group's: every choice scales by 10 and shifts by
        # -0.5 (conf/reward/*.yaml; AReaL's defaults are 1 and 0), the discount is the one given
        assert (exp.actor.reward_scaling, exp.actor.reward_bias, exp.rollout.agent.turn_discount) == (10.0, -0.5, 0.9)


@pytest.fixture(scope="module")
def released_data(tmp_path_factory):
    from helpers.areal_tau2 import write_dataset

    return write_dataset(tmp_path_factory.mktemp("AReaL-tau2-data"))


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_preset_composes_and_validates(experiment, released_data, tmp_path):
    # the miniature runs on this machine (its stages are local processes)
    # (and names each run by the time it starts: pinned here, to compare two compositions)
    where = ["trial_name=t0"] if experiment == "cpu_miniature" else slurm_overrides(tmp_path)
    args = [f"data.path={released_data}", USER_SIM, *where]
    composed = compose([f"experiment={experiment}", *args])
    assert composed.choices["experiment"] == experiment
    layout = checked(composed).layout
    assert layout.n_gpus == composed.config.cluster.n_nodes * composed.config.cluster.n_gpus_per_node
    # written `+experiment=` as well (the form Hydra's docs use for optional groups)
    assert compose([f"+experiment={experiment}", *args]).config == composed.config


def test_the_sea_preset_sets_the_papers_recipe(released_data, tmp_path):
    """AReaL-SEA (arXiv 2601.22607): Qwen3-30B-A3B on the released data, three domains mixed,
    GRPO 8 x 64, lr 5e-6 constant, eps_clip 0.4, no KL, temperature 1.0, 8192 new tokens per
    turn, 32k context, groups dropped when max reward is 0 or mean >= 0.99, 4 eval trials."""
    composed = compose(["experiment=sea_30b_a3b", f"data.path={released_data}", USER_SIM,
                        *slurm_overrides(tmp_path)])
    exp = composed.config
    assert (composed.choices["model"], composed.choices["data"]) == ("qwen3_30b_a3b", "areal_tau2")
    assert exp.actor.path == "Qwen/Qwen3-30B-A3B" and exp.data.domains is None
    assert (exp.gconfig.n_samples, exp.train_dataset.batch_size) == (8, 64)
    assert (exp.actor.optimizer.lr, exp.actor.optimizer.lr_scheduler_type) == (5e-6, "constant")
    assert (exp.actor.eps_clip, exp.actor.kl_ctl, exp.gconfig.temperature) == (0.4, 0.0, 1.0)
    assert (exp.gconfig.max_new_tokens, exp.gconfig.max_tokens, exp.sglang.context_length) == (8192, 32768, 32768)
    assert (exp.group_filter.max_mean_reward, exp.group_filter.min_mean_reward) == (0.99, 0.01)
    assert exp.econfig.reward_basis_by_domain == {"airline": ["DB"], "retail": ["DB"], "telecom": ["ENV_ASSERTION"]}
    assert exp.eval.num_trials == 4
    # its SFT stage: the paper's 10 epochs at lr 1e-5 cosine, filed apart from the RL run
    sft = compose(["experiment=sea_30b_a3b", "mode=sft", f"data.path={released_data}", USER_SIM,
                   *slurm_overrides(tmp_path)]).config
    assert (sft.sft.epochs, sft.sft.lr, sft.sft.lr_scheduler_type) == (10, 1e-5, "cosine")
    assert (sft.experiment_name, exp.experiment_name) == ("tau2-sea-30b-a3b-sft", "tau2-sea-30b-a3b")


def test_a_mixed_run_keeps_each_domains_step_limit():
    """data=areal_tau2's per-domain step limits are the domain groups' own."""
    from tau2train.config.overrides import load_choice

    mixed = compose(["data=areal_tau2", "data.path=/nowhere", USER_SIM]).config.econfig
    for domain in ("airline", "retail", "telecom"):
        assert mixed.max_steps_of(domain) == load_choice("domain", domain).max_steps
    assert mixed.max_steps_of("mock") == mixed.max_steps  # not named: the domain group's


def test_env_config_defaults_match_the_documented_ones():
    env = EnvConfig()
    assert (env.domain, env.max_steps, env.add_thinking_tool, env.solo_mode) == ("telecom", 100, False, False)
    assert (env.user_llm_base_url, env.user_llm, env.user_llm_args) == (None, None, None)
    for name, field in EnvConfig.__dataclass_fields__.items():
        assert field.metadata.get("help"), f"EnvConfig.{name} has no help"


def test_a_typo_inside_a_group_file_fails_at_composition(tmp_path, monkeypatch):
    """Group files name their schema: a misspelt key in a YAML choice is caught."""
    import importlib.resources
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(importlib.resources.files("tau2train.conf"), conf)
    bad = conf / "domain" / "airline.yaml"
    bad.write_text(bad.read_text().replace("max_steps:", "max_step:"))
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from tau2train.config.registry import register

    register()
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        with pytest.raises(ConfigCompositionException) as error:
            hydra_compose("config", overrides=["domain=airline"])
    assert "max_step" in str(error.value.__cause__ or error.value)


@pytest.mark.parametrize("model", [m for m in MODELS if m != "tiny_qwen3"])
def test_the_cpu_server_refuses_a_model_too_large_for_it(model):
    composed = compose([f"model={model}", "allocation=cpu_d1_fsdp_d1", "cluster.n_gpus_per_node=2", USER_SIM])
    with pytest.raises(ConfigError) as error:
        checked(composed)
    assert (error.value.key, error.value.value) == ("allocation.server", "cpu")
    assert "parameters" in error.value.problem and "100M" in error.value.problem
    assert "model=tiny_qwen3" in error.value.valid and "allocation.server=sglang" in error.value.valid


def test_the_tiny_model_runs_on_the_cpu_server_with_tau2trains_worker():
    exp = checked(compose(["model=tiny_qwen3", "domain=mock", USER_SIM])).config
    assert exp.allocation.server == "cpu" and exp.model.num_params < 100_000_000
    assert exp.actor.scheduling_spec[0].cmd == "python3 -m tau2train.serving.rollout_worker"
    assert exp.trainer.cpu_only and exp.actor.dtype == "float32"
    gpu = checked(compose(["model=qwen3_1_7b", USER_SIM])).config
    assert gpu.actor.scheduling_spec[0].cmd == "python3 -m areal.infra.rpc.rpc_server"
