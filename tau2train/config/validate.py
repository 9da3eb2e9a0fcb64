"""Checks that need the whole experiment, run before any GPU is touched.

Each check raises one `ConfigError`; the order goes from what the user typed (names,
allocation syntax) to what follows from it (GPU counts, model fit, token budgets).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable

from areal.api.alloc_mode import ModelAllocation, ParallelStrategy

from tau2train.config import areal_sft, areal_tau2
from tau2train.config import catalog as tau2_catalog
from tau2train.config.checked import AGENT, USER_SIM, Checked, Endpoint
from tau2train.config.clusters import cluster_checks
from tau2train.config.compose import Composed
from tau2train.config.declared import check_declared
from tau2train.config.endpoints import check_base_url
from tau2train.config.errors import ConfigError
from tau2train.config.gpu_layout import Layout, role_key
from tau2train.config.key_index import declared_refusal
from tau2train.config.overrides import group_options, load_choice
from tau2train.config.played_tasks import check_tau2_data, eval_played, judge_endpoints, training_played
from tau2train.config.reward import check_reward
from tau2train.config.servers import ServedCheckpoint, check_server, served_checkpoint
from tau2train.config.storage import check_storage
from tau2train.records.checkpoints import training_run_dir
from tau2train.schemas import (
    ALL_TASKS,
    DOMAIN_MAPS,
    INFERENCE_BACKENDS,
    RANGE,
    REWARD_TYPES,
    SECRETS_SET_ELSEWHERE,
    TRAINING_BACKENDS,
    DomainSpec,
    ExperimentConfig,
    endpoint_model_name,
    scored_task_ids,
)
from tau2train.schemas.groups import CPU_SERVER_MAX_PARAMS
from tau2train.schemas.modes import facts

# Environment variables whose values must never be copied into a config.
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def validate(composed: Composed, check_mode: Callable[[Composed], Checked]) -> Checked:
    """Raise ConfigError on the first problem; when all is well, what the checks resolved.
    `check_mode`: the mode's own checks (its entry in tau2train.launch.modes), between the
    ones every mode runs."""
    exp = composed.config
    check_declared(exp)
    check_names(exp)
    cluster_checks(exp).settings(exp)
    checked = check_mode(composed)
    check_tracking(exp)
    check_secrets_set_elsewhere(exp)
    check_no_secrets(exp)
    return checked


def check_train(composed: Composed) -> Checked:
    """mode=train: the GPU layout, the token budgets, the τ² data and who plays the user."""
    exp = composed.config
    layout = check_layout(exp)
    check_token_budgets(exp)
    data = check_data(exp)
    domains = areal_tau2.trained_domains(exp, data)
    check_tau2_data(exp, training_played(exp, domains))
    check_domain(exp, training_splits(exp))
    check_episode_settings(exp)
    check_reward(exp)
    check_per_group_norms(exp)
    check_user_sims_trained(exp, domains)
    users = check_user_simulator(exp, domains)
    check_storage(exp)
    return Checked(composed, layout=layout, rl_data=data, domains=domains, user_sims=users,
                   judges=judge_endpoints(exp))


def check_sft(composed: Composed) -> Checked:
    """mode=sft: no rollouts, no episodes: the trainer's layout and the SFT file only."""
    exp = composed.config
    layout = check_layout(exp)
    data = check_sft_data(exp)
    check_storage(exp)
    return Checked(composed, layout=layout, sft_data=data)


def check_eval(composed: Composed) -> Checked:
    """mode=eval: what is scored (an endpoint, or a checkpoint that exists), on which tasks."""
    exp = composed.config
    served = check_scored(exp)
    check_submission_type(exp, served)
    scored = None if served else Endpoint("eval.agent_base_url", exp.eval.agent_base_url, exp.eval.agent_model,
                                          "eval.agent_model", AGENT)
    check_tau2_data(exp, eval_played(exp))
    check_domain(exp, [("eval.split", exp.eval.split, "set eval.split to one of those")])
    check_eval_tasks(exp)
    check_episode_settings(exp)
    domains = (exp.econfig.domain,)
    users = check_user_simulator(exp, domains)
    return Checked(composed, served=served, scored=scored, domains=domains, user_sims=users,
                   judges=judge_endpoints(exp))


def check_recipe(composed: Composed) -> Checked:
    """mode=recipe: what training checks that needs no file a stage makes, the weights to start
    from, and the recipe's own needs (this machine, the domain's τ² tasks as its data)."""
    exp = composed.config
    layout = check_layout(exp)
    check_token_budgets(exp)
    check_domain(exp, training_splits(exp))
    check_episode_settings(exp)
    check_reward(exp)
    for key, value, why, valid in (
        ("launcher", exp.launcher, "mode=recipe runs its stages on this machine", "local (cluster=local)"),
        ("data.source", exp.data.source, "mode=recipe makes its own SFT data from the domain's tasks", "tau2 (data=tau2)"),
    ):
        if value != valid.split()[0]:
            raise ConfigError(key, value, why, valid=valid,
                              fix="run the stages one by one (mode=sft, mode=train, mode=eval) for this setting")
    check_start_weights(exp)
    check_storage(exp)
    return Checked(composed, layout=layout, domains=(exp.econfig.domain,))


def check_start_weights(exp: ExperimentConfig) -> None:
    """The recipe's weights exist, or are the tiny Qwen3 it builds itself."""
    from tau2train.serving.tiny_qwen import tiny_qwen_width

    if os.path.isdir(exp.actor.path) or tiny_qwen_width(exp.actor.path):
        return
    raise ConfigError(
        "actor.path", exp.actor.path, "mode=recipe starts from local weights, and there are none there",
        valid="a Hugging Face model folder on this machine, or model=tiny_qwen3 (built by the recipe)",
        fix="download the weights first (nothing is fetched at run time) and set model.path to their folder",
    )


def check_cpu_server(exp: ExperimentConfig) -> None:
    """allocation.server=cpu: the CPU server serves only models small enough for a laptop."""
    if exp.allocation.server != "cpu":
        return
    params = exp.model.num_params
    if params is None or params > CPU_SERVER_MAX_PARAMS:
        size = "an unknown number of" if params is None else f"{params / 1e9:.2f}B"
        raise ConfigError(
            "allocation.server", "cpu",
            f"model {exp.model.name} has {size} parameters (model.num_params); the CPU server generates "
            f"in float32 on this machine's cores and takes models of at most "
            f"{CPU_SERVER_MAX_PARAMS // 1_000_000}M",
            valid=f"a model of at most {CPU_SERVER_MAX_PARAMS // 1_000_000}M parameters (model=tiny_qwen3), "
            "or allocation.server=sglang on GPUs",
            fix="pick a GPU layout (e.g. drop allocation=cpu_d1_fsdp_d1: each model picks its own), "
            "or model=tiny_qwen3 for a CPU run",
        )


def check_layout(exp: ExperimentConfig) -> Layout:
    """The allocation parsed, and every role the mode runs fitting the model and the cluster."""
    layout = parse_layout(exp)
    check_cpu_server(exp)
    check_engine(exp, layout)
    cluster_checks(exp).layout(exp, layout)
    check_gpu_count(exp, layout)
    for role in facts(exp.mode).gpu_roles:
        check_model_fit(exp, role, getattr(layout, role).parallel)
    return layout


def check_episode_settings(exp: ExperimentConfig) -> None:
    check_domain_maps(exp)
    check_reward_basis(exp)


def check_per_group_norms(exp: ExperimentConfig) -> None:
    """AReaL's group-level normalisation slices the batch every gconfig.n_samples rows
    (areal/utils/data.py, Normalization), but a τ² rollout's rows are completions, several an
    episode and as many as its turns: the slices would straddle groups. The group's own
    baseline is group_filter.baseline=group."""
    for name in ("adv_norm", "reward_norm"):
        norm = getattr(exp.actor, name)
        if norm is None or "group" not in (norm.mean_level, norm.std_level):
            continue
        level = "mean_level" if norm.mean_level == "group" else "std_level"
        raise ConfigError(
            f"actor.{name}.{level}", "group",
            f"AReaL normalises per group in fixed slices of gconfig.n_samples={exp.gconfig.n_samples} "
            "rows, and a τ² rollout trains on one row per completion (several an episode, as many "
            "as its turns): the slices would cut across groups",
            valid="batch or null",
            fix=f"actor.{name}.mean_level=batch actor.{name}.std_level=batch, and "
                "group_filter.baseline=group for GRPO's per-group baseline over whole episodes",
        )


def check_names(exp: ExperimentConfig) -> None:
    # AReaL joins names into job ids and paths as <experiment>_<trial>:<job>.
    for key, value, forbidden, joiner in (
        ("experiment_name", exp.experiment_name, "_/", "-"),
        ("trial_name", exp.trial_name, "-/", "_"),
    ):
        if value and not any(c in value for c in forbidden):
            continue
        suggestion = "".join(joiner if c in forbidden else c for c in value) or "trial0"
        raise ConfigError(
            key,
            value,
            f"AReaL forbids {forbidden[0]!r} and {forbidden[1]!r} in {key}" if value else "must not be empty",
            valid=f"letters, digits, '.' and {joiner!r}",
            fix=f"e.g. {key}={suggestion}",
        )


def parse_layout(exp: ExperimentConfig) -> Layout:
    parsed = {}
    for role, backends in (("rollout", INFERENCE_BACKENDS), ("actor", TRAINING_BACKENDS)):
        key, value = role_key(exp, role)
        try:
            allocation = ModelAllocation.from_str(value, name=role)
        except Exception as error:  # AReaL's parser raises ValueError, its own errors, asserts
            reason = str(error).strip().split("\n\n")[0].replace("\n", " ")
            raise ConfigError(
                key,
                value,
                f"AReaL's allocation parser rejects it: {reason}",
                valid="backend:dims, e.g. sglang:d6, sglang:d8t4, archon:d2, "
                "megatron:(attn:d4p4t2|ffn:d2p4e4); layouts: " + ", ".join(group_options("allocation")),
                fix="fix the string, or pick a layout with allocation=<name>",
            ) from None
        if allocation.backend not in backends:
            raise ConfigError(
                key,
                value,
                f"{allocation.backend} cannot serve the {role} role",
                valid=", ".join(backends),
                fix=f"use one of those backends for {key}",
            )
        parsed[role] = allocation
    return Layout(**parsed)


def check_engine(exp: ExperimentConfig, layout: Layout) -> None:
    if layout.actor.backend == exp.model.engine:
        return
    matching = [
        name
        for name in group_options("allocation")
        if load_choice("allocation", name).actor.split(":")[0] == exp.model.engine
    ]
    key, value = role_key(exp, "actor")
    raise ConfigError(
        key,
        value,
        f"trains with {layout.actor.backend}, but model.engine={exp.model.engine} "
        f"(the engine this model's settings are tuned for)",
        valid=f"{exp.model.engine} layouts: {', '.join(matching) or 'none yet'}",
        fix=f"pick allocation=<one of those>, or set model.engine={layout.actor.backend} "
        "if you mean to switch engines",
    )


def check_gpu_count(exp: ExperimentConfig, layout: Layout) -> None:
    cluster = exp.cluster
    available = cluster.n_nodes * cluster.n_gpus_per_node
    needed = layout.n_gpus
    if needed != available:
        raise ConfigError(
            "allocation",
            f"{exp.rollout.backend}+{exp.actor.backend}",
            f"uses {layout.rollout.parallel.world_size} rollout + "
            f"{layout.actor.parallel.world_size} trainer = {needed} GPUs, but the cluster has "
            f"cluster.n_nodes={cluster.n_nodes} x cluster.n_gpus_per_node="
            f"{cluster.n_gpus_per_node} = {available}",
            valid=f"layouts whose GPUs add up to {available}",
            fix="change allocation.rollout / allocation.actor so the GPUs add up, "
            "or set cluster.n_nodes to match",
        )


def check_model_fit(exp: ExperimentConfig, role: str, parallel: ParallelStrategy) -> None:
    model = exp.model
    key, value = role_key(exp, role)
    tp, pp, ep = parallel.tp_size, parallel.pp_size, parallel.ep_size
    problems = []
    if model.num_attention_heads % tp:
        problems.append(
            f"tensor parallel size {tp} does not divide the {model.num_attention_heads} attention heads"
        )
    if model.num_kv_heads % tp and tp % model.num_kv_heads:
        problems.append(
            f"tensor parallel size {tp} and the {model.num_kv_heads} KV heads do not divide one another"
        )
    if pp > model.num_layers:
        problems.append(f"pipeline parallel size {pp} exceeds the {model.num_layers} layers")
    if ep > 1 and not model.num_experts:
        problems.append(f"expert parallel size {ep} on a dense model (no experts)")
    if model.num_experts and model.num_experts % ep:
        problems.append(f"expert parallel size {ep} does not divide the {model.num_experts} experts")
    if problems:
        raise ConfigError(
            key,
            value,
            f"does not fit {model.path}: " + "; ".join(problems),
            valid=f"tp dividing {model.num_attention_heads} heads (and {model.num_kv_heads} KV heads "
            f"or a multiple), pp <= {model.num_layers} layers, "
            + (f"ep dividing {model.num_experts} experts" if model.num_experts else "ep = 1"),
            fix=f"change the parallel sizes in {key}",
        )


def check_token_budgets(exp: ExperimentConfig) -> None:
    g = exp.gconfig
    if g.max_new_tokens > g.max_tokens:
        raise ConfigError(
            "gconfig.max_new_tokens",
            g.max_new_tokens,
            f"one turn may generate more than the whole episode holds (gconfig.max_tokens={g.max_tokens})",
            valid=f"<= {g.max_tokens}",
            fix="lower gconfig.max_new_tokens or raise gconfig.max_tokens",
        )
    per_mb = exp.actor.mb_spec.max_tokens_per_mb
    if per_mb is not None and per_mb < g.max_tokens:
        raise ConfigError(
            "actor.mb_spec.max_tokens_per_mb",
            per_mb,
            f"a micro-batch cannot hold one full episode of gconfig.max_tokens={g.max_tokens} tokens",
            valid=f">= {g.max_tokens}",
            fix=f"set actor.mb_spec.max_tokens_per_mb={g.max_tokens} or more, "
            "or lower gconfig.max_tokens",
        )


def training_splits(exp: ExperimentConfig) -> list[tuple[str, str | None, str]]:
    """(key, split, fix) of the τ² splits a training run reads (data=areal_tau2: no train split;
    its rows come from data.path)."""
    used = [("valid_dataset.split", exp.valid_dataset.split if exp.valid_dataset else None)]
    if exp.data.source == "tau2":
        used.insert(0, ("train_dataset.split", exp.train_dataset.split))
    return [(key, split, f"set domain.{key.split('_')[0]}_split to one of those") for key, split in used]


def check_domain(exp: ExperimentConfig, used: list[tuple[str, str | None, str]]) -> None:
    """econfig.domain is one of tau2's, and each `used` (key, split, fix) one of its splits."""
    catalog = tau2_catalog.domain_splits(exp.econfig.tau2_data_dir)
    domain = exp.econfig.domain
    if domain not in catalog:
        raise ConfigError(
            "econfig.domain",
            domain,
            "tau2's registry has no such domain",
            valid=", ".join(sorted(catalog)) + f" (config choices: {', '.join(group_options('domain'))})",
            fix="pick domain=<choice>; to add a domain, register it with tau2 and add conf/domain/<name>.yaml",
        )
    splits = catalog[domain] + [ALL_TASKS]
    for key, split, fix in used:
        if split is not None and split not in splits:
            raise ConfigError(
                key, split, f"tau2's {domain} domain has no such task split",
                valid=", ".join(splits), fix=fix,
            )
    check_task_ids(exp)


def check_task_ids(exp: ExperimentConfig) -> None:
    """domain.tasks names tasks the domain has."""
    if exp.domain.tasks is None:
        return
    from tau2.registry import registry

    known = [task.id for task in registry.get_tasks_loader(exp.econfig.domain)(None)]
    unknown = [t for t in exp.domain.tasks if t not in known]
    if unknown or not exp.domain.tasks:
        raise ConfigError(
            "domain.tasks", exp.domain.tasks,
            f"{exp.econfig.domain} has no task {', '.join(unknown)}" if unknown else "no task is left to play",
            valid=f"task ids of {exp.econfig.domain}: {', '.join(known)}",
            fix="list task ids of the domain, or domain.tasks=null for every task",
        )


def check_submission_type(exp: ExperimentConfig, served: ServedCheckpoint | None) -> None:
    """A checkpoint tau2train trained is a custom leaderboard entry (the leaderboard's rule for
    models trained on τ² tasks or rewards), never a standard one."""
    if served is None or exp.eval.submission_type != "standard" or training_run_dir(served.path) is None:
        return
    raise ConfigError(
        "eval.submission_type", "standard",
        f"the checkpoint was trained by tau2train ({served.path}): the leaderboard lists a model trained on "
        "τ² tasks or rewards as custom",
        valid="custom for a trained checkpoint; standard only for a model not trained on τ²",
        fix="drop eval.submission_type=standard",
    )


def check_eval_tasks(exp: ExperimentConfig) -> None:
    """eval.task_ids names tasks of the split (after domain.tasks), and eval.num_tasks at most
    as many as there are."""
    from tau2.registry import registry

    ev, domain = exp.eval, exp.econfig.domain
    split = [task.id for task in registry.get_tasks_loader(domain)(None if ev.split == ALL_TASKS else ev.split)]
    known = scored_task_ids(split, exp.domain.tasks)
    where = f"{domain}/{ev.split}" + (" (after domain.tasks)" if exp.domain.tasks is not None else "")
    unknown = [t for t in ev.task_ids or [] if t not in known]
    if unknown or ev.task_ids == []:
        raise ConfigError(
            "eval.task_ids", ev.task_ids,
            f"{where} has no task {', '.join(unknown)}" if unknown else "names no task",
            valid=f"task ids of {where}: {', '.join(known[:20])}" + (f", ... ({len(known)} in all)" if len(known) > 20 else ""),
            fix="list task ids of the split, or eval.task_ids=null for every task",
        )
    available = len(scored_task_ids(split, exp.domain.tasks, ev.task_ids))
    if ev.num_tasks is not None and ev.num_tasks > available:
        raise ConfigError(
            "eval.num_tasks", ev.num_tasks, f"is more than the {available} tasks {where} has to score",
            valid=f"1 to {available}", fix=f"set eval.num_tasks={available} or less, or null for every task",
        )


def check_data(exp: ExperimentConfig) -> areal_tau2.RlFile | None:
    """data=areal_tau2: the RL file loads, every row is a τ² Task on a snapshot that exists
    (tau2train.config.areal_tau2), and its rows are returned; data=tau2 reads no file, so a
    data.path is a mistake."""
    data = exp.data
    if data.source == "areal_tau2":
        loaded = areal_tau2.load(data.path, data.domains)
        if data.weights:
            areal_tau2.check_weights(loaded, data.weights)
        return loaded
    for key, value in (("data.path", data.path), ("data.domains", data.domains), ("data.weights", data.weights or None)):
        if value is not None:
            raise ConfigError(
                key, value, f"data={data.source} trains on τ²'s own splits and reads no {key}",
                valid=f"{'{}' if key == 'data.weights' else 'null'} with data=tau2",
                fix=f"add data=areal_tau2 to train on the AReaL-tau2-data rows, or drop {key}",
            )
    return None


def check_domain_maps(exp: ExperimentConfig) -> None:
    """The per-domain settings name tau2 domains; step limits are positive."""
    known = set(tau2_catalog.domain_splits())
    env = exp.econfig
    for name in DOMAIN_MAPS:
        for domain in getattr(env, name):
            key = f"econfig.{name}.{domain}"
            if domain not in known:
                raise ConfigError(key, domain, f"{domain!r} is not a tau2 domain", valid=", ".join(sorted(known)),
                                  fix=f"name a tau2 domain, or drop {key}")
    # a domain's own step limit: the range its domain group's max_steps declares
    steps_range = {f.name: f for f in dataclasses.fields(DomainSpec)}["max_steps"].metadata[RANGE]
    for domain, steps in env.max_steps_by_domain.items():
        refusal = declared_refusal(f"econfig.max_steps_by_domain.{domain}", steps, None, steps_range)
        if refusal:
            raise refusal


def check_sft_data(exp: ExperimentConfig) -> areal_sft.SftFile:
    """mode=sft trains on the AReaL-tau2-data SFT file: data=areal_tau2, and the file loads
    with every line a well-formed example (tau2train.config.areal_sft)."""
    if exp.data.source != "areal_tau2":
        raise ConfigError(
            "data", exp.data.source, "mode=sft trains on the AReaL-tau2-data SFT file (tau2_sft_train.jsonl)",
            valid="areal_tau2",
            fix="add data=areal_tau2 data.path=/shared/AReaL-tau2-data",
        )
    loaded = areal_sft.load(exp.data.path, exp.data.domains, exp.sft.correct_only)
    if exp.train_dataset.drop_last and len(loaded.examples) < exp.sft.batch_size:
        raise ConfigError(
            "sft.batch_size", exp.sft.batch_size,
            f"the SFT file holds {len(loaded.examples)} examples to train on, fewer than one batch: with "
            "train_dataset.drop_last AReaL would train no step at all",
            valid=f"at most {len(loaded.examples)}",
            fix=f"set sft.batch_size={len(loaded.examples)} or lower",
        )
    return loaded


def check_reward_basis(exp: ExperimentConfig) -> None:
    by_domain = exp.econfig.reward_basis_by_domain
    for key, basis in (
        ("econfig.reward_basis", exp.econfig.reward_basis),
        ("eval.reward_basis", exp.eval.reward_basis),
        *((f"econfig.reward_basis_by_domain.{d}", b) for d, b in by_domain.items()),
    ):
        unknown = [b for b in basis or [] if b not in REWARD_TYPES]
        if unknown or basis == []:
            raise ConfigError(
                key,
                basis,
                f"{unknown[0]!r} is not a tau2 reward type" if unknown else "an empty basis scores nothing",
                valid=f"a list of {', '.join(REWARD_TYPES)}, or null for each task's own basis",
                fix=f"e.g. {key}=[DB] or {key}=null",
            )


def check_scored(exp: ExperimentConfig) -> ServedCheckpoint | None:
    """An endpoint to score (None), or a checkpoint that exists to serve (its step resolved)."""
    served = served_checkpoint(exp)
    if served is not None:
        check_server(exp.eval.server, "eval.server")
        return served
    url = exp.eval.agent_base_url
    if not url:
        raise ConfigError(
            "eval.agent_base_url",
            url,
            "mode=eval needs the agent endpoint (or a checkpoint) to evaluate",
            valid="the base URL of an OpenAI-compatible server, e.g. http://host:30000/v1",
            fix="add eval.agent_base_url=http://<host>:<port>/v1 (its API key goes in $OPENAI_API_KEY), "
            "or eval.checkpoint_step=latest to serve this run's newest checkpoint",
        )
    check_base_url("eval.agent_base_url", url, AGENT)
    return None


def user_sim_endpoints(exp: ExperimentConfig, played: tuple[str, ...]) -> tuple[Endpoint, ...]:
    """The user simulators the episodes of the `played` domains talk to: econfig's own, unless
    econfig.user_llm_by_domain names one for every domain played, and those it names."""
    env = exp.econfig
    if env.solo_mode:
        return ()
    own = env.user_llm_by_domain
    found = [
        Endpoint(f"econfig.user_llm_by_domain.{d}.base_url", own[d].base_url,
                 endpoint_model_name(own[d].model or env.user_llm),
                 f"econfig.user_llm_by_domain.{d}.model" if own[d].model else "econfig.user_llm", USER_SIM)
        for d in played if d in own
    ]
    if any(d not in own for d in played):
        found.insert(0, Endpoint("econfig.user_llm_base_url", env.user_llm_base_url,
                                 endpoint_model_name(env.user_llm), "econfig.user_llm", USER_SIM))
    return tuple(found)


def check_user_sims_trained(exp: ExperimentConfig, trained: tuple[str, ...]) -> None:
    """Training: a user simulator named for a domain the run has no rows of is a mistake."""
    for domain in exp.econfig.user_llm_by_domain:  # tau2 domains: check_domain_maps
        if domain not in trained:
            key = f"econfig.user_llm_by_domain.{domain}"
            raise ConfigError(
                key, domain, "this run trains on no such rows", valid=", ".join(trained),
                fix=f"name a domain the run plays, or drop {key}",
            )


def check_user_simulator(exp: ExperimentConfig, played: tuple[str, ...]) -> tuple[Endpoint, ...]:
    """Every user simulator the `played` domains need has a URL; returns them."""
    env = exp.econfig
    for domain, endpoint in env.user_llm_by_domain.items():
        check_base_url(f"econfig.user_llm_by_domain.{domain}.base_url", endpoint.base_url or None, USER_SIM)
    if env.user_llm_base_url:
        check_base_url("econfig.user_llm_base_url", env.user_llm_base_url, USER_SIM)
    endpoints = user_sim_endpoints(exp, played)
    if not any(e.key == "econfig.user_llm_base_url" for e in endpoints):
        return endpoints
    if not env.solo_mode and not env.user_llm_base_url:
        raise ConfigError(
            "econfig.user_llm_base_url",
            env.user_llm_base_url,
            "every episode needs a user simulator, and no server URL is set "
            f"(no running server is recorded in {exp.user_sim.record_file})",
            valid="an OpenAI-compatible base URL, e.g. http://user-sim-host:8000/v1/",
            fix="start one with `tau2train-user-sim` or `python -m tau2train.user_sim` (same user_sim, cluster and "
            "cluster.fileroot as this run; it records its URL there), or add "
            "econfig.user_llm_base_url=http://<host>:<port>/v1/, "
            "or econfig.solo_mode=true for domains without a user",
        )
    return endpoints


def check_secrets_set_elsewhere(exp: ExperimentConfig) -> None:
    """Keys and secrets whose config field must keep its default: they come from elsewhere."""
    for key, (allowed, fix) in SECRETS_SET_ELSEWHERE.items():
        if functools.reduce(getattr, key.split("."), exp) != allowed:
            raise ConfigError(
                key, "<redacted>", "a secret in a config ends up in saved configs and job scripts",
                valid=repr(allowed), fix=fix,
            )


def check_tracking(exp: ExperimentConfig) -> None:
    if exp.dry_run or exp.tracking.mode != "online" or os.environ.get("WANDB_API_KEY"):
        return
    netrc = os.path.expanduser(os.environ.get("NETRC", "~/.netrc"))
    if os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read():
        return  # `wandb login` stored the key there
    raise ConfigError(
        "tracking.mode",
        "online",
        "wandb online needs an API key and none is set (no $WANDB_API_KEY, no `wandb login`)",
        valid="online with a key, offline, disabled",
        fix="export WANDB_API_KEY=... (or `wandb login`), or tracking.mode=offline, or tracking=none",
    )


def check_no_secrets(exp: ExperimentConfig) -> None:
    """Refuse a config that carries a secret's value (e.g. through ${oc.env:WANDB_API_KEY})."""
    from dataclasses import asdict

    secrets = {
        name: value
        for name, value in os.environ.items()
        if any(marker in name.upper() for marker in SECRET_MARKERS) and len(value) >= 8
    }
    if not secrets:
        return

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        elif isinstance(node, str):
            yield path, node

    for path, text in walk(asdict(exp), ""):
        for name, value in secrets.items():
            if value in text:
                raise ConfigError(
                    path,
                    "<redacted>",
                    f"holds the value of the secret ${name}; secrets must not be written "
                    "into configs, job scripts or logs",
                    fix=f"remove it from the config; the jobs read ${name} from the environment",
                )
