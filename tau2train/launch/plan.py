"""The dry run's products: the AReaL YAML in the run directory and a plan a person can check."""

from __future__ import annotations

import getpass
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from tau2train.config import areal_tau2
from tau2train.config.checked import Checked
from tau2train.config.placement import describe, slurm_job, worker_sbatch_env
from tau2train.config.sbatch import sbatch_options
from tau2train.records.files import write_atomic
from tau2train.records.layout import areal_config_file, generated_dir
from tau2train.reports.tables import align
from tau2train.schemas import TAU2TRAIN_ONLY_KEYS, ExperimentConfig, Placement


def plain_config(config: Any) -> dict[str, Any]:
    """A config dataclass, fully resolved, as AReaL's YAML loader takes it (enums as values)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(asdict(config))


def areal_config(exp: ExperimentConfig) -> dict[str, Any]:
    """The PPOConfig part of the experiment, fully resolved, as AReaL's YAML loader takes it."""
    config = plain_config(exp)
    for key in TAU2TRAIN_ONLY_KEYS:
        config.pop(key)
    return config


def write_yaml(config: dict[str, Any], path: Path) -> Path:
    """Write an AReaL YAML atomically: a crash never leaves a truncated file behind."""
    return write_atomic(path, yaml.safe_dump(config, sort_keys=False, default_flow_style=False))


def write_areal_config(exp: ExperimentConfig) -> Path:
    return write_yaml(areal_config(exp), areal_config_file(exp.run_dir))


def train_plan(checked: Checked) -> str:
    """mode=train's dry run: the AReaL config written, and the plan."""
    return render_train_plan(checked, write_areal_config(checked.config))


def render_train_plan(checked: Checked, config_path: Path | None) -> str:
    """The plan of a validated training run."""
    exp, layout, choices = checked.config, checked.layout, checked.choices
    model, cluster = exp.model, exp.cluster
    user = getpass.getuser()
    n_available = cluster.n_nodes * cluster.n_gpus_per_node
    arch = f"{model.num_layers} layers, {model.num_attention_heads} heads / {model.num_kv_heads} KV heads, " + (
        f"MoE with {model.num_experts} experts" if model.num_experts else "dense"
    )

    lines = [
        "tau2train plan (dry run: nothing was started or submitted)",
        "",
        *align([
            ["model", choices["model"], f"{model.path} ({arch})"],
            domain_row(checked),
            ["data", choices["data"], data_line(checked)],
            ["reward", choices["reward"], reward_line(exp)],
            ["cluster", choices["cluster"], f"{cluster.n_nodes} node(s) x {cluster.n_gpus_per_node} GPUs, "
             f"AReaL scheduler '{exp.scheduler.type}'"],
            ["experiment", exp.experiment_name, f"trial {exp.trial_name}"],
            *per_domain_rows(checked),
        ]),
        "",
        f"GPU layout: allocation={choices['allocation']} ({exp.rollout.backend} + {exp.actor.backend})",
    ]
    rows = [["role", "backend", "GPUs", "dp", "tp", "pp", "cp", "ep", "expert dp"]]
    for role, allocation in (("rollout", layout.rollout), ("trainer", layout.actor)):
        p = allocation.parallel
        rows.append([role, allocation.backend, str(p.world_size), str(p.dp_size), str(p.tp_size),
                     str(p.pp_size), str(p.cp_size), str(p.ep_size), str(p.edp_size)])
    rows.append(["total", "", f"{layout.n_gpus} of {n_available}", "", "", "", "", "", ""])
    lines += align(rows)

    g = exp.gconfig
    lines += [
        "",
        "Token budgets and batch",
        *align([
            ["per agent turn", "gconfig.max_new_tokens", str(g.max_new_tokens)],
            ["per episode", "gconfig.max_tokens", str(g.max_tokens)],
            ["per micro-batch", "actor.mb_spec.max_tokens_per_mb", str(exp.actor.mb_spec.max_tokens_per_mb)],
            ["inference context", "sglang.context_length", str(exp.sglang.context_length)],
            ["episodes per step", "train_dataset.batch_size x gconfig.n_samples",
             f"{exp.train_dataset.batch_size} x {g.n_samples} = {exp.train_dataset.batch_size * g.n_samples}"],
            ["concurrent episodes", "rollout.max_concurrent_rollouts", str(exp.rollout.max_concurrent_rollouts)],
        ]),
        "",
        "Where things go",
        *align([
            ["AReaL config", str(config_path) if config_path else "(not written)"],
            ["checkpoints", f"{cluster.fileroot}/checkpoints/{user}/{exp.experiment_name}/{exp.trial_name}"],
            ["logs, rollouts", f"{cluster.fileroot}/logs/{user}/{exp.experiment_name}/{exp.trial_name}"],
            ["τ² trajectories", str(generated_dir(exp.run_dir))],
            ["recover", f"mode={exp.recover.mode}"],
        ]),
    ]
    return "\n".join(lines)


def domain_row(checked: Checked) -> list[str]:
    """The plan's domain line: the domain group's split, or a mixed run's domains."""
    exp = checked.config
    valid = exp.valid_dataset.split if exp.valid_dataset else "-"
    if checked.rl_data is not None:
        steps = ", ".join(f"{d} {exp.econfig.max_steps_of(d)}" for d in checked.domains)
        return ["domains", "(each row's)", f"valid split '{valid}' of every trained domain; max steps: {steps}"]
    return ["domain", checked.choices["domain"], f"tau2 '{exp.econfig.domain}', train split '{exp.train_dataset.split}', "
            f"valid split '{valid}', max {exp.econfig.max_steps} steps"]


def per_domain_rows(checked: Checked) -> list[list[str]]:
    """The plan's user simulator and reward basis of each domain played."""
    env = checked.config.econfig
    rows = []
    for domain in checked.domains:
        label = f" ({domain})" if checked.rl_data is not None else ""
        url, llm = env.user_sim_of(domain)
        rows.append([f"user sim{label}", llm or "-", "solo mode (no user simulator)" if env.solo_mode else str(url)])
        basis = env.reward_basis_of(domain)
        rows.append([f"reward basis{label}", "each task's own basis" if basis is None else "+".join(basis),
                     "training episodes' tau2 reward types"])
    return rows


def reward_line(exp: ExperimentConfig) -> str:
    """The shaped reward as a sum of weighted terms, and the shaping around it."""
    r = exp.reward
    terms = " + ".join(f"{t.weight:g} x {t._target_.rsplit('.', 1)[-1]}" + (f"({t.args})" if t.args else "")
                       for t in r.terms)
    return (f"{terms}; format penalty {r.format_penalty:g}, turn discount {r.turn_discount:g}, "
            f"trained on (r {r.bias:+g}) x {r.scaling:g}")


def data_line(checked: Checked) -> str:
    """Where the training rows come from; for AReaL-tau2-data, rows per domain and snapshots."""
    exp = checked.config
    if checked.rl_data is not None:
        return f"{exp.data.path}: " + areal_tau2.summary(checked.rl_data, exp.data.weights)
    return f"τ² split '{exp.train_dataset.split}' of '{exp.econfig.domain}'"


def slurm_submission(checked: Checked) -> str:
    """cluster=slurm: the job submitit would submit, where the run's processes go, and what
    AReaL then starts (any mode)."""
    launcher = checked.launcher
    exp = checked.config
    shown = ["partition", "account", "qos", "timeout_min", "nodes", "tasks_per_node",
             "cpus_per_task", "mem_gb", "gpus_per_node", "name", "submitit_folder", "setup"]
    rows = [[key, str(launcher.get(key))] for key in shown if launcher.get(key) not in (None, [], "")]
    rows += [[option, "true" if value is True else str(value)] for option, value in sbatch_options(exp.slurm).items()]
    where = slurm_job(exp).placement
    if where is None:
        placed = "one job: the evaluation, and the checkpoint's server when one is served, inside it"
    else:
        placed = f"{where.value} (slurm.placement={exp.slurm.placement}): {describe(where, exp.cluster.n_nodes)}"
    return "\n".join([
        "Slurm submission (would be made through hydra-submitit-launcher; not submitted)",
        f"  placement: {placed}",
        "  the job:",
        *["  " + line for line in align(rows)],
        *["  " + line for line in role_jobs(exp, where)],
    ])


def role_job_options(exp: ExperimentConfig) -> str:
    """What of `slurm.*` those jobs get: AReaL writes their sbatch lines itself; the controller's
    sbatch calls pass these on as sbatch's input environment (placement.worker_sbatch_env)."""
    env = worker_sbatch_env(exp.slurm)
    given = ", ".join(f"{var.removeprefix('SBATCH_').lower()}={value}" for var, value in env.items())
    return f"(each with the controller's {given} through sbatch's SBATCH_* environment; not slurm.extra_sbatch)"


def role_jobs(exp: ExperimentConfig, where: Placement | None) -> list[str]:
    """What AReaL starts once the job runs: workers inside it, or one Slurm job per role."""
    cluster = exp.cluster
    if where is Placement.SINGLE_JOB:
        return [f"then AReaL's local scheduler starts the workers of {cluster.n_gpus_per_node} GPUs inside the job"
                + (" (trainer.cpu_only: no GPU asked for)" if exp.trainer.cpu_only else "")]
    if where is Placement.PER_ROLE_JOBS:
        container = f" in {exp.slurm.container_image}" if exp.slurm.container_type == "apptainer" else ""
        return [f"then AReaL's Slurm scheduler submits one job per role on whole nodes of "
                f"{cluster.n_gpus_per_node} GPUs ({cluster.n_nodes} nodes in all){container}",
                role_job_options(exp)]
    return []
