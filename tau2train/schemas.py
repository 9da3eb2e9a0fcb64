"""Typed schemas for every config tau2train composes.

The root config a user composes is `ExperimentConfig`: AReaL's own `PPOConfig` (so the
trainer gets exactly what it accepts) plus the τ² environment (`econfig`) and the facts
of the chosen config groups (`model`, `domain`, `allocation`, `slurm`).  Only the
`PPOConfig` part is handed to AReaL; the group facts feed validation and the plan.

Every schema is registered in Hydra's ConfigStore as `schema/<group>` so each YAML
choice names its schema in its defaults list and a typo fails at composition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from areal.api.cli_args import ClusterSpecConfig
from areal.api.cli_args import PPOConfig as ArealPPOConfig
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from tau2train.tau2_catalog import tau2_data_dir
from tau2train.user_sim_record import USER_SIM_URL_RESOLVER, recorded_url

# econfig.user_llm_base_url defaults to ${tau2train.user_sim_url:<record>}: the URL a running
# `python -m tau2train.serve_user_sim` recorded. Registered on import, not in register_configs,
# so every process that resolves a config (a Slurm job re-composing its own included) has it.
OmegaConf.register_new_resolver(USER_SIM_URL_RESOLVER, recorded_url, replace=True)
# ${tau2train.tau2_data_dir:}: the installed tau2's data, for Slurm jobs and their workers.
OmegaConf.register_new_resolver("tau2train.tau2_data_dir", tau2_data_dir, replace=True)


# tau2's reward types (tau2.data_model.tasks.RewardType), spelled out so that validation
# need not import tau2.
REWARD_TYPES = ("DB", "ENV_ASSERTION", "NL_ASSERTION", "ACTION", "COMMUNICATE")


@dataclass
class EnvConfig:
    """Options of the τ² environment each rollout episode runs in."""

    domain: str = field(
        default="telecom",
        metadata={"help": "τ² domain to train on: airline, retail, telecom or mock."},
    )
    max_steps: int = field(
        default=100,
        metadata={"help": "Maximum number of agent/user steps in one episode."},
    )
    add_thinking_tool: bool = field(
        default=False,
        metadata={"help": "Give the agent a `think` tool to reason in the open."},
    )
    solo_mode: bool = field(
        default=False,
        metadata={
            "help": "The agent plays both roles (no user simulator); only for domains "
            "with a solo policy."
        },
    )
    user_llm_base_url: str | None = field(
        default=None,
        metadata={
            "help": "OpenAI-compatible base URL of the user-simulator LLM server, "
            "e.g. http://host:8000/v1/. Required unless solo_mode."
        },
    )
    user_llm: str | None = field(
        default=None,
        metadata={
            "help": "litellm model name of the user simulator, "
            "e.g. openai/self-hosted-Qwen2.5-72B."
        },
    )
    user_llm_args: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Sampling arguments for the user simulator, "
            "e.g. {temperature: 0.0, max_completion_tokens: 512}."
        },
    )
    turn_discount: float = field(
        default=1.0,
        metadata={"help": "Per-turn discount of the episode reward (1.0 = none)."},
    )
    invalid_format_penalty: float = field(
        default=0.1,
        metadata={
            "help": "Penalty given to each malformed agent completion "
            "(unknown tool, bad arguments, empty message)."
        },
    )
    reward_basis: list[str] | None = field(
        default=None,
        metadata={
            "help": "Score training episodes on these tau2 reward types only "
            "(DB, ENV_ASSERTION, ACTION, COMMUNICATE, NL_ASSERTION); null = each task's own."
        },
    )
    fast_env: bool = field(
        default=True,
        metadata={
            "help": "Build each episode's environment over one read-only copy of the domain "
            "DB per process, copying records on access (same results as tau2's loader, far "
            "cheaper); false loads tau2's packaged data for every environment."
        },
    )
    user_llm_max_retries: int = field(
        default=3,
        metadata={
            "help": "Retries (exponential backoff) of a failed user-simulator call before "
            "the episode is recorded as failed."
        },
    )
    user_llm_timeout: float = field(
        default=120.0,
        metadata={"help": "Seconds one user-simulator call may take."},
    )


@dataclass
class GroupFilterConfig:
    """AReaL's dynamic filter over each group of rollouts of one task (GRPO group)."""

    max_mean_reward: float | None = field(
        default=0.95,
        metadata={
            "help": "Drop groups whose mean reward is above this (already solved: "
            "nothing to learn); null keeps them."
        },
    )
    min_mean_reward: float | None = field(
        default=None,
        metadata={
            "help": "Drop groups whose mean reward is below this (e.g. 0.05: all failed); "
            "null keeps them."
        },
    )


@dataclass
class PPOConfig(ArealPPOConfig):
    """AReaL's PPOConfig with the τ² environment: what AReaL's PPOTrainer is given."""

    econfig: EnvConfig = field(
        default_factory=EnvConfig,
        metadata={"help": "τ² environment options for every rollout episode."},
    )
    group_filter: GroupFilterConfig = field(
        default_factory=GroupFilterConfig,
        metadata={"help": "Which rollout groups the trainer keeps (dynamic filtering)."},
    )
    min_dataset_size: int = field(
        default=128,
        metadata={
            "help": "Task splits smaller than this are repeated whole until they reach it, "
            "so every batch can be filled."
        },
    )


@dataclass
class ModelSpec:
    """Facts about a model that validation and naming need; HF config.json values."""

    name: str = field(
        default=MISSING,
        metadata={"help": "Short name used in experiment names (no '_' or '/')."},
    )
    path: str = field(
        default=MISSING,
        metadata={"help": "HuggingFace id or local path of the weights to train."},
    )
    num_layers: int = field(
        default=MISSING, metadata={"help": "num_hidden_layers of the model."}
    )
    num_attention_heads: int = field(
        default=MISSING, metadata={"help": "num_attention_heads of the model."}
    )
    num_kv_heads: int = field(
        default=MISSING, metadata={"help": "num_key_value_heads of the model."}
    )
    num_experts: int = field(
        default=0, metadata={"help": "Routed experts per MoE layer; 0 for a dense model."}
    )
    engine: str = field(
        default=MISSING,
        metadata={
            "help": "AReaL training engine this model's settings are tuned for "
            "(archon for dense, megatron for MoE); the allocation's trainer backend "
            "must match."
        },
    )


@dataclass
class DomainSpec:
    """A τ² domain and the task splits training and validation draw from."""

    name: str = field(
        default=MISSING, metadata={"help": "τ² domain name in tau2's registry."}
    )
    train_split: str = field(
        default="train", metadata={"help": "τ² task split used for training."}
    )
    valid_split: str = field(
        default="test", metadata={"help": "τ² task split used for validation."}
    )
    max_steps: int = field(
        default=50, metadata={"help": "Episode step limit for this domain."}
    )


@dataclass
class AllocationSpec:
    """A GPU layout in AReaL's allocation syntax, one backend string per role."""

    rollout: str = field(
        default=MISSING,
        metadata={"help": "Inference backend and parallelism, e.g. sglang:d6."},
    )
    actor: str = field(
        default=MISSING,
        metadata={
            "help": "Training backend and parallelism, e.g. archon:d2 or "
            "megatron:(attn:d4p4t2|ffn:d2p4e4)."
        },
    )
    n_nodes: int = field(
        default=1, metadata={"help": "Nodes the layout is planned for."}
    )


@dataclass
class SlurmSpec:
    """Slurm submission settings for the controller job (used with cluster=slurm)."""

    partition: str | None = field(
        default=None, metadata={"help": "Slurm partition (sbatch --partition)."}
    )
    account: str | None = field(
        default=None, metadata={"help": "Slurm account (sbatch --account)."}
    )
    qos: str | None = field(default=None, metadata={"help": "Slurm QOS (sbatch --qos)."})
    time_minutes: int = field(
        default=4320, metadata={"help": "Time limit of the controller job in minutes."}
    )
    cpus_per_task: int = field(
        default=8, metadata={"help": "CPUs for the controller job."}
    )
    mem_gb: int = field(default=64, metadata={"help": "Memory (GB) for the controller job."})
    container_type: str = field(
        default="none",
        metadata={
            "help": "How GPU workers run: in an apptainer container or on the host.",
            "choices": ["none", "apptainer"],
        },
    )
    container_image: str = field(
        default="",
        metadata={"help": "Container image the GPU workers run in (apptainer only)."},
    )
    container_mounts: str = field(
        default="", metadata={"help": "Bind mounts for the container, src:dst[,src:dst]."}
    )
    setup: list[str] = field(
        default_factory=list,
        metadata={"help": "Shell lines run before the controller starts (module load, ...)."},
    )
    env_vars: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Environment variables for the controller and its workers (no secrets: "
            "sbatch passes your shell's environment, so export keys there)."
        },
    )
    requeue_on_timeout: int = field(
        default=3,
        metadata={
            "help": "Times a job that reaches its time limit requeues itself and resumes "
            "from its last recover checkpoint (preempted jobs always requeue)."
        },
    )
    array_parallelism: int = field(
        default=64, metadata={"help": "Jobs of one -m sweep array that may run at once."}
    )


@dataclass
class EvalSpec:
    """`mode=eval`: score any OpenAI-compatible endpoint on a τ² task split."""

    agent_base_url: str | None = field(
        default=None,
        metadata={
            "help": "OpenAI-compatible base URL of the agent under test, e.g. "
            "http://host:30000/v1. Its API key is read from $OPENAI_API_KEY, never from a config."
        },
    )
    agent_model: str = field(
        default="default", metadata={"help": "Model name sent to the agent endpoint."}
    )
    split: str = field(
        default="test", metadata={"help": "τ² task split to evaluate on."}
    )
    num_trials: int = field(
        default=4, metadata={"help": "Episodes per task; pass^k is reported for k=1..this."}
    )
    max_concurrency: int = field(
        default=16, metadata={"help": "Episodes running at the same time."}
    )
    reward_basis: list[str] | None = field(
        default=None,
        metadata={
            "help": "Score on these tau2 reward types only; null (the default) scores each "
            "task on its own basis, as published τ² results do."
        },
    )
    gen_args: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Sampling arguments for the agent, e.g. {temperature: 0.0}."},
    )
    episode_timeout: float = field(
        default=600.0, metadata={"help": "Seconds one episode may take before it is failed."}
    )


@dataclass
class TrackingSpec:
    """Experiment tracking (tracking group): where the trainer's stats and eval reports go."""

    backend: str = field(
        default="none",
        metadata={"help": "wandb or none.", "choices": ["wandb", "none"]},
    )
    project: str = field(default="tau2train", metadata={"help": "wandb project."})
    entity: str | None = field(
        default=None, metadata={"help": "wandb team or user; null = your default entity."}
    )
    mode: str = field(
        default="disabled",
        metadata={
            "help": "online, offline (sync later with `wandb sync`) or disabled.",
            "choices": ["online", "offline", "disabled"],
        },
    )
    group: str | None = field(
        default=None, metadata={"help": "Run group: the sweep, or the experiment."}
    )
    notes: str | None = field(default=None, metadata={"help": "Free text on the run page."})
    tags: list[str] = field(
        default_factory=list, metadata={"help": "Run tags; the chosen config groups by default."}
    )


@dataclass
class UserSimSlurmSpec:
    """The Slurm job the user-simulator server runs in (cluster=slurm)."""

    partition: str | None = field(
        default=None, metadata={"help": "Slurm partition of the server job (null = cluster default)."}
    )
    account: str | None = field(
        default=None, metadata={"help": "Slurm account of the server job."}
    )
    qos: str | None = field(default=None, metadata={"help": "Slurm QOS of the server job."})
    time_minutes: int = field(
        default=4320,
        metadata={"help": "Time limit of the server job in minutes: as long as the runs it serves."},
    )
    cpus_per_task: int = field(
        default=32, metadata={"help": "CPUs of the server job (tokenization, scheduling)."}
    )
    mem_gb: int = field(
        default=256, metadata={"help": "Host memory (GB) of the server job (weights pass through it)."}
    )
    gpus_per_node: int = field(
        default=8,
        metadata={
            "help": "GPUs asked of Slurm (sbatch --gpus-per-node); 0 asks for none, for "
            "partitions that hand out whole GPU nodes without it."
        },
    )
    setup: list[str] = field(
        default_factory=list,
        metadata={"help": "Shell lines run before the server starts (module load, source venv)."},
    )


@dataclass
class UserSimSpec:
    """The SGLang server the τ² user simulator talks to (user_sim group), started by
    `python -m tau2train.serve_user_sim`; training and eval jobs find it through its record."""

    model_path: str = field(
        default=MISSING, metadata={"help": "HuggingFace id or local path of the user-simulator weights."}
    )
    served_model_name: str = field(
        default=MISSING,
        metadata={
            "help": "Model name the server answers to; econfig.user_llm is openai/<this> and "
            "the record is named after it."
        },
    )
    tp: int = field(default=1, metadata={"help": "Tensor-parallel size (GPUs per model replica)."})
    dp: int = field(default=1, metadata={"help": "Data-parallel size (model replicas)."})
    gpus: int = field(default=1, metadata={"help": "GPUs the server uses; must equal tp x dp."})
    host: str = field(
        default="0.0.0.0", metadata={"help": "Address the server listens on (0.0.0.0: every interface)."}
    )
    port: int = field(default=8000, metadata={"help": "Port the server listens on."})
    tool_call_parser: str = field(
        default="qwen25", metadata={"help": "SGLang --tool-call-parser for the model's tool calls."}
    )
    chat_template: str = field(
        default="qwen_nonthinking.jinja",
        metadata={
            "help": "SGLang --chat-template: a file name shipped in tau2train/chat_templates, "
            "or a path to your own."
        },
    )
    extra_args: list[str] = field(
        default_factory=list,
        metadata={"help": "More server arguments, e.g. [--mem-fraction-static, '0.85']."},
    )
    server_module: str = field(
        default="sglang.launch_server",
        metadata={"help": "Python module run as the server (`python -m <this> ...`)."},
    )
    python: str | None = field(
        default=None,
        metadata={
            "help": "Python interpreter that has the server installed; null = the one running "
            "serve_user_sim."
        },
    )
    startup_timeout_s: float = field(
        default=3600.0,
        metadata={
            "help": "Seconds to wait (Slurm queue + weight loading) for GET /health to answer "
            "before the server is stopped and the launch fails."
        },
    )
    record_file: str = field(
        default=MISSING,
        metadata={
            "help": "JSON record of the running server (URL, job id or pid, logs); training "
            "and eval read econfig.user_llm_base_url from it. Shared storage on Slurm."
        },
    )
    log_dir: str = field(
        default=MISSING, metadata={"help": "Where the server's logs (and Slurm job files) go."}
    )
    slurm: UserSimSlurmSpec = field(
        default_factory=UserSimSlurmSpec, metadata={"help": "The server's Slurm job (cluster=slurm)."}
    )


@dataclass
class TrainerSpec:
    """Which trainer `mode=train` hands the composed config to, and the episode settings
    only the trainer call needs."""

    _target_: str = field(
        default="areal.PPOTrainer",
        metadata={
            "help": "Import path of the trainer class, called as "
            "cls(config, train_dataset=..., valid_dataset=...).train(...)."
        },
    )
    episode_timeout: float = field(
        default=600.0,
        metadata={"help": "Seconds a training episode may take; a slower one is discarded."},
    )
    valid_temperature: float = field(
        default=0.6,
        metadata={"help": "Sampling temperature of the validation episodes (upstream: 0.6)."},
    )


@dataclass
class ExperimentConfig(PPOConfig):
    """The root config: AReaL's PPOConfig + econfig, plus the chosen groups' facts."""

    mode: str = field(
        default="train",
        metadata={
            "help": "What to run: train (AReaL's trainer) or eval (score an endpoint).",
            "choices": ["train", "eval"],
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Compose, validate, write the AReaL config and print the plan; "
            "never starts or submits anything."
        },
    )
    run_dir: str = field(
        default=MISSING,
        metadata={"help": "Where this run's resolved config and Hydra logs go."},
    )
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"help": "model group."})
    domain: DomainSpec = field(
        default_factory=DomainSpec, metadata={"help": "domain group."}
    )
    allocation: AllocationSpec = field(
        default_factory=AllocationSpec, metadata={"help": "allocation group."}
    )
    slurm: SlurmSpec = field(
        default_factory=SlurmSpec, metadata={"help": "Slurm settings (cluster group)."}
    )
    eval: EvalSpec = field(
        default_factory=EvalSpec, metadata={"help": "Evaluation settings (mode=eval)."}
    )
    trainer: TrainerSpec = field(
        default_factory=TrainerSpec, metadata={"help": "Trainer settings (mode=train)."}
    )
    tracking: TrackingSpec = field(
        default_factory=TrackingSpec, metadata={"help": "Experiment tracking (tracking group)."}
    )
    user_sim: UserSimSpec = field(
        default_factory=UserSimSpec,
        metadata={"help": "The user-simulator server (user_sim group; tau2train.serve_user_sim)."},
    )


# Keys of ExperimentConfig that are ours, not AReaL's: dropped from the YAML AReaL loads.
TAU2TRAIN_ONLY_KEYS = (
    "mode", "dry_run", "run_dir", "model", "domain", "allocation", "slurm", "eval", "trainer",
    "tracking", "user_sim",
)


@dataclass
class RunInfo:
    """One τ² episode as it happened: what was said, how long it took, what it earned."""

    task_id: str = ""
    split: str | None = None
    reward: float = 0.0
    # Why the episode ended, as tau2 names it (agent_stop, user_stop, max_steps, ...).
    termination_reason: str | None = None
    duration: float = 0.0
    agent_latencies: list[float] = field(default_factory=list)
    user_latencies: list[float] = field(default_factory=list)
    # Reward handed to AReaL per agent completion id (format penalties + episode reward).
    completion_rewards: dict[str, float] = field(default_factory=dict)
    # Completion id -> what was malformed in it.
    format_problems: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    task: dict[str, Any] | None = None
    reward_info: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, default=str)

    def __str__(self) -> str:
        def stats(xs: list[float]) -> str:
            if not xs:
                return "n/a"
            return f"{len(xs)} calls, mean {sum(xs) / len(xs):.2f}s, max {max(xs):.2f}s"

        lines = [
            f"Task: {self.task_id}" + (f" (split {self.split})" if self.split else ""),
            f"Reward: {self.reward}",
        ]
        if self.termination_reason:
            lines.append(f"Ended by: {self.termination_reason} after {self.duration:.2f}s")
        lines += [
            f"Agent latency: {stats(self.agent_latencies)}",
            f"User latency: {stats(self.user_latencies)}",
        ]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.reward_info:
            lines.append("Reward info: " + json.dumps(self.reward_info, default=str))
        for completion_id, problem in self.format_problems.items():
            lines.append(f"Malformed completion {completion_id}: {problem}")
        if self.completion_rewards:
            lines.append("Completion rewards: " + json.dumps(self.completion_rewards))
        lines.append("Messages:")
        for i, message in enumerate(self.messages):
            role = message.get("role", "?")
            content = message.get("content") or ""
            lines.append(f"[{i}] {role}: {content}")
            for call in message.get("tool_calls") or []:
                lines.append(f"    -> {call.get('name')}({json.dumps(call.get('arguments'))})")
        return "\n".join(lines)


def register_configs() -> None:
    """Store the root schema and one schema per group where YAML choices can name it."""
    cs = ConfigStore.instance()
    cs.store(name="tau2train_schema", node=ExperimentConfig)
    for name, node in [
        ("model", ModelSpec),
        ("domain", DomainSpec),
        ("allocation", AllocationSpec),
        ("cluster", ClusterSpecConfig),
        ("slurm", SlurmSpec),
        ("tracking", TrackingSpec),
        ("user_sim", UserSimSpec),
    ]:
        cs.store(group="schema", name=name, node=node)
