"""The config groups' own schemas: model, domain, allocation, Slurm, eval, trainer,
tracking and the user-simulator server. Each YAML choice names its schema in its defaults."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from omegaconf import MISSING

from tau2train.schemas.declare import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    TEMPERATURE,
    Range,
    setting,
)

# AReaL backends by role (the names its allocation syntax uses).
INFERENCE_BACKENDS = ("sglang", "vllm")
TRAINING_BACKENDS = ("archon", "megatron", "fsdp")
# Which program serves the policy, and the AReaL worker command that starts it: SGLang on GPUs
# (AReaL's own worker), or tau2train's CPU server (tau2train.serving) for models small enough.
POLICY_SERVERS = {
    "sglang": "areal.infra.rpc.rpc_server",
    "cpu": "tau2train.serving.rollout_worker",
}
# The largest model the CPU server takes: it generates in float32 on a laptop's cores.
CPU_SERVER_MAX_PARAMS = 100_000_000


class Placement(str, Enum):
    """Where a cluster=slurm training run's processes go (tau2train.config.placement)."""

    SINGLE_JOB = "single_job"  # one job on one node; AReaL's local scheduler inside
    PER_ROLE_JOBS = "per_role_jobs"  # a controller job; AReaL's Slurm scheduler submits each role's


# slurm.placement's choices: auto picks single_job for a one-node layout, per_role_jobs for more
AUTO_PLACEMENT = "auto"
PLACEMENTS = [AUTO_PLACEMENT, *(p.value for p in Placement)]

@dataclass
class ModelSpec:
    """Facts about a model that validation and naming need; HF config.json values."""

    name: str = setting(MISSING, "Short name used in experiment names (no '_' or '/').")
    path: str = setting(MISSING, "HuggingFace id or local path of the weights to train.")
    num_layers: int = setting(MISSING, "num_hidden_layers of the model.", range=AT_LEAST_ONE)
    num_attention_heads: int = setting(MISSING, "num_attention_heads of the model.", range=AT_LEAST_ONE)
    num_kv_heads: int = setting(MISSING, "num_key_value_heads of the model.", range=AT_LEAST_ONE)
    num_experts: int = setting(0, "Routed experts per MoE layer; 0 for a dense model.", range=NON_NEGATIVE)
    num_params: int | None = setting(None, "Total parameters (embeddings included); checks that "
        "allocation.server=cpu can serve the model. null: unknown, refused by the CPU server.",
        range=AT_LEAST_ONE)
    engine: str = setting(MISSING, "AReaL training engine this model's settings are tuned for (archon for "
        "dense, megatron for MoE); the allocation's trainer backend must match.",
        choices=list(TRAINING_BACKENDS))


@dataclass
class DomainSpec:
    """A τ² domain and the task splits training and validation draw from."""

    name: str = setting(MISSING, "τ² domain name in tau2's registry.")
    train_split: str = setting("train", "τ² task split used for training.")
    valid_split: str = setting("test", "τ² task split used for validation.")
    max_steps: int = setting(50, "Episode step limit for this domain.", range=AT_LEAST_ONE)
    tasks: list[str] | None = setting(None, "Only these task ids of the splits, in training, validation and "
        "evaluation (null: every task of the split). The miniature recipe leaves out the mock tasks that "
        "cannot be scored or replayed.")


# Where training rows come from (the data group).
DATA_SOURCES = ("tau2", "areal_tau2")


@dataclass
class DataSpec:
    """Where the training rows come from: τ²'s own task splits, or the released
    AReaL-tau2-data RL file (mixed domains, one DB snapshot per row)."""

    source: str = setting("tau2", "tau2: the domain group's τ² train split; areal_tau2: every row of the "
        "AReaL-tau2-data RL file (tau2_rl_train.jsonl) of data.domains, each played on its own DB snapshot.",
        choices=list(DATA_SOURCES))
    path: str | None = setting(None, "areal_tau2: the dataset's folder as downloaded (tau2_rl_train.jsonl and "
        "tau2_rl_database/; mode=sft reads its tau2_sft_train.jsonl); on Slurm, storage the rollout workers "
        "see.")
    domains: list[str] | None = setting(None, "areal_tau2: the domains whose rows are trained on (RL rows, or "
        "SFT examples with mode=sft), in the file's own ratio; null = every domain in the file.")
    weights: dict[str, float] = setting(help="areal_tau2: mixing weights, one per trained domain, e.g. "
        "{airline: 1, retail: 1, telecom: 1}: each epoch keeps the file's row count and gives each domain "
        "weight/sum of it (rows repeated or drawn, seeded); {} = the file's own ratio.", factory=dict)


@dataclass
class AllocationSpec:
    """A GPU layout in AReaL's allocation syntax, one backend string per role."""

    rollout: str = setting(MISSING, "Inference backend and parallelism, e.g. sglang:d6.")
    actor: str = setting(MISSING, "Training backend and parallelism, e.g. archon:d2 or "
        "megatron:(attn:d4p4t2|ffn:d2p4e4).")
    n_nodes: int = setting(1, "Nodes the layout is planned for.", range=AT_LEAST_ONE)
    server: str = setting("sglang", "What serves the rollout backend's policy: sglang (SGLang on the rollout "
        "GPUs) or cpu (tau2train's CPU server speaking SGLang's protocol, for models of at "
        f"most {CPU_SERVER_MAX_PARAMS // 1_000_000}M parameters: the miniature recipe).",
        choices=list(POLICY_SERVERS))


@dataclass
class QueueSpec:
    """What one Slurm job asks for (as hydra-submitit-launcher's BaseQueueConf): shared by the
    controller job (`slurm`) and the user-simulator server's job (`user_sim.slurm`)."""

    partition: str | None = setting(None, "Slurm partition (sbatch --partition); null = the cluster's "
        "default.")
    account: str | None = setting(None, "Slurm account (sbatch --account).")
    qos: str | None = setting(None, "Slurm QOS (sbatch --qos).")
    time_minutes: int = setting(4320, "Time limit of the job in minutes.", range=AT_LEAST_ONE)
    cpus_per_task: int = setting(8, "CPUs of the job.", range=AT_LEAST_ONE)
    mem_gb: int = setting(64, "Host memory (GB) of the job.", range=AT_LEAST_ONE)
    setup: list[str] = setting(help="Shell lines run before the job's program starts (module load, source a "
        "venv, ...).", factory=list)


@dataclass
class SlurmSpec(QueueSpec):
    """Slurm submission settings of a run's job (used with cluster=slurm)."""

    cpus_per_task: int = setting(8, "CPUs of the controller (a one-node training job adds its GPU workers': "
        "slurm.placement).", range=AT_LEAST_ONE)
    mem_gb: int = setting(64, "Host memory (GB) of the controller (a one-node training job adds its GPU "
        "workers': slurm.placement).", range=AT_LEAST_ONE)
    placement: str = setting(AUTO_PLACEMENT, "Where a training run's processes go. single_job: one job on one "
        "node holding its GPUs (CPUs and memory: the controller's plus actor.scheduling_spec[0].cpu/.mem per "
        "GPU), AReaL's local scheduler starting the workers inside. per_role_jobs: a controller job without "
        "GPUs, AReaL's Slurm scheduler submitting one job per role on whole nodes. auto: single_job when the "
        "layout fits on one node (cluster.n_nodes=1), else per_role_jobs.", choices=PLACEMENTS)
    container_type: str = setting("none", "How GPU workers run: in an apptainer container or on the host "
        "(apptainer: per_role_jobs placement only).", choices=["none", "apptainer"])
    container_image: str = setting("", "Container image the GPU workers run in (apptainer only).")
    container_mounts: str = setting("", "Bind mounts for the container, src:dst[,src:dst].")
    env_vars: dict[str, str] = setting(help="Environment variables for the controller and its workers (no "
        "secrets: sbatch passes your shell's environment, so export keys there).", factory=dict)
    requeue_on_timeout: int = setting(3, "Times a job that reaches its time limit requeues itself and resumes "
        "from its last recover checkpoint (preempted jobs always requeue).", range=NON_NEGATIVE)
    array_parallelism: int = setting(64, "Jobs of one -m sweep array that may run at once.",
        range=AT_LEAST_ONE)
    constraint: str | None = setting(None, "Node features the job needs (sbatch --constraint), e.g. h100 or "
        "'h100|a100'; null = any node.")
    reservation: str | None = setting(None, "Slurm reservation the job runs in (sbatch --reservation).")
    exclusive: bool = setting(False, "The job's node is shared with no other job (sbatch --exclusive).")
    extra_sbatch: dict[str, Any] = setting(help="Any other sbatch option, by its long name without dashes, "
        "e.g. {mail-type: END, mail-user: me@lab.org}; true writes a flag without a value (--contiguous). An "
        "option tau2train sets itself is refused, naming the key that sets it.", factory=dict)
    same_host: bool | None = setting(None, "Whether the jobs run on the machine that submits them (a one-node "
        "Slurm on this machine): only then may a server URL (econfig.user_llm_base_url, eval.agent_base_url, "
        "...) name a loopback host (localhost, 127.0.0.1), which on a compute node is the node itself. null: "
        "ask Slurm (sinfo) whether every node of the job's partitions is this machine, and refuse a loopback "
        "URL when it cannot tell; true: they are; false: they are not.")
    shared_paths: list[str] = setting(help="Directories under a node-local location (/tmp, /var/tmp, "
        "/dev/shm, /run) that every node does share (shared storage mounted there; the hosts of "
        "tests/setup_cluster.sh, which share one machine's files), e.g. [/tmp/tau2-shared]: cluster.fileroot "
        "and cluster.name_resolve.nfs_record_root may lie under one of them when the run's jobs span several "
        "nodes (slurm.placement per_role_jobs), which otherwise refuses them. Absolute paths.", factory=list)


@dataclass
class ServerSpec:
    """An SGLang server tau2train starts itself: its program, parallelism and address."""

    tp: int = setting(1, "Tensor-parallel size (GPUs per model replica).", range=AT_LEAST_ONE)
    dp: int = setting(1, "Data-parallel size (model replicas).", range=AT_LEAST_ONE)
    gpus: int = setting(1, "GPUs the server uses; must equal tp x dp.", range=AT_LEAST_ONE)
    host: str = setting("0.0.0.0", "Address the server listens on (0.0.0.0: every interface).")
    port: int = setting(8000, "Port the server listens on.", range=PORT)
    tool_call_parser: str = setting("qwen25", "SGLang --tool-call-parser for the model's tool calls.")
    chat_template: str | None = setting("qwen_nonthinking.jinja", "SGLang --chat-template: a file name "
        "shipped in tau2train/chat_templates, or a path to your own; null = the model's own template.")
    extra_args: list[str] = setting(help="More server arguments, e.g. [--mem-fraction-static, '0.85'].",
        factory=list)
    server_module: str = setting("sglang.launch_server", "Python module run as the server (`python -m <this> "
        "...`).")
    python: str | None = setting(None, "Python interpreter that has the server installed; null = the one "
        "running tau2train.")
    startup_timeout_s: float = setting(3600.0, "Seconds to wait (Slurm queue + weight loading) for GET "
        "/health to answer before the server is stopped and the launch fails.", range=POSITIVE)


@dataclass
class EvalServerSpec(ServerSpec):
    """The SGLang server `mode=eval` starts for `eval.checkpoint` / `eval.checkpoint_step`, on
    the machine the evaluation runs on (cluster=slurm: inside its job), stopped when it ends."""

    host: str = setting("127.0.0.1", "Address the server listens on; the evaluation reaches it at 127.0.0.1.")
    port: int = setting(30000, "Port the server listens on.", range=PORT)
    chat_template: str | None = setting(None, "SGLang --chat-template; null (default) = the checkpoint's own "
        "template, the one training rendered prompts with.")
    startup_timeout_s: float = setting(1800.0, "Seconds weight loading may take before GET /health answers.",
        range=POSITIVE)
    slurm_gpus_per_node: int | None = setting(None, "cluster=slurm: GPUs the evaluation's job asks for "
        "(sbatch --gpus-per-node); null = eval.server.gpus; 0 asks for none, for partitions that hand out "
        "whole GPU nodes without it.", range=NON_NEGATIVE)


@dataclass
class EvalSpec:
    """`mode=eval`: score any OpenAI-compatible endpoint on a τ² task split."""

    agent_base_url: str | None = setting(None, "OpenAI-compatible base URL of the agent under test, e.g. "
        "http://host:30000/v1. Its API key is read from $OPENAI_API_KEY, never from a config.")
    agent_model: str = setting("default", "Model name sent to the agent endpoint.")
    split: str = setting("test", "τ² task split to evaluate on.")
    num_trials: int = setting(4, "Episodes per task; pass^k is reported for k=1..this.", range=AT_LEAST_ONE)
    task_ids: list[str] | None = setting(None, "Score only these tasks of the split (a quick look): the "
        "report marks its task set a subset, and tau2train-submission refuses it. null = every task of the "
        "split.")
    num_tasks: int | None = setting(None, "Score only the split's first N tasks, in tau2's order (after "
        "eval.task_ids and domain.tasks): a subset, marked and refused as eval.task_ids is. null = all of "
        "them.", range=AT_LEAST_ONE)
    max_concurrency: int = setting(16, "Episodes running at the same time.", range=AT_LEAST_ONE)
    reward_basis: list[str] | None = setting(None, "Score on these tau2 reward types only; null (the default) "
        "scores each task on its own basis, as published τ² results do.")
    gen_args: dict[str, Any] = setting(help="Sampling arguments for the agent, e.g. {temperature: 0.0}.",
        factory=dict)
    episode_timeout: float = setting(600.0, "Seconds one episode may take; a slower one is an infrastructure "
        "failure.", range=POSITIVE)
    count_failures_as_wrong: bool = setting(False, "Episodes that failed outside the agent (user simulator or "
        "agent endpoint erroring, timeouts, evaluator errors) are left out of the metrics and listed apart, "
        "as τ²-bench does; true scores them 0 instead. The report says which.")
    max_infra_failure_rate: float = setting(0.1, "Largest share of episodes that may fail outside the agent "
        "(user simulator, agent endpoint, timeouts, evaluator errors); past it the evaluation exits non-zero, "
        "its metrics.json marked incomplete and no submission.json written. 1 accepts any.", range=FRACTION)
    checkpoint: str | None = setting(None, "Evaluate a checkpoint instead of an endpoint: a training run's "
        "directory (<fileroot>/<experiment>/<trial>) or its AReaL checkpoint folder "
        "(<fileroot>/checkpoints/<user>/<experiment>/<trial>), whose step eval.checkpoint_step picks (default "
        "latest), or a Hugging Face model folder. tau2train serves it (eval.server) for the evaluation and "
        "stops the server afterwards.")
    checkpoint_step: str | None = setting(None, "latest, or a global step: which AReaL checkpoint to "
        "evaluate; with eval.checkpoint null, this run's own (experiment_name/trial_name/cluster.fileroot). 0 "
        "= the base model (actor.path).")
    server: EvalServerSpec = setting(help="The server that serves eval.checkpoint (SGLang by default).",
        factory=EvalServerSpec)
    submission_type: str = setting("custom", "submission.json's leaderboard category: custom for any model "
        "trained on τ² domains (the leaderboard's rule), standard for a base model.",
        choices=["custom", "standard"])
    model_organization: str | None = setting(None, "submission.json: the organisation that made the model.")
    submitting_organization: str | None = setting(None, "submission.json: the organisation submitting the "
        "results.")


@dataclass
class TrackingSpec:
    """Experiment tracking (tracking group): where the trainer's stats and eval reports go."""

    backend: str = setting("none", "wandb or none.", choices=["wandb", "none"])
    project: str = setting("tau2train", "wandb project.")
    entity: str | None = setting(None, "wandb team or user; null = your default entity.")
    mode: str = setting("disabled", "online, offline (sync later with `wandb sync`) or disabled.",
        choices=["online", "offline", "disabled"])
    group: str | None = setting(None, "Run group: the sweep, or the experiment.")
    notes: str | None = setting(None, "Free text on the run page.")
    tags: list[str] = setting(help="Run tags; the chosen config groups by default.", factory=list)


@dataclass
class UserSimSlurmSpec(QueueSpec):
    """The Slurm job the user-simulator server runs in (cluster=slurm)."""

    gpus_per_node: int = setting(8, "GPUs asked of Slurm (sbatch --gpus-per-node); 0 asks for none, for "
        "partitions that hand out whole GPU nodes without it.", range=NON_NEGATIVE)


@dataclass
class UserSimSpec(ServerSpec):
    """The SGLang server the τ² user simulator talks to (user_sim group), started by
    `tau2train-user-sim`; training and eval jobs find it through its record."""

    # 0 GPUs is allowed here, and only here: user_sim=rule_based serves no model
    tp: int = setting(1, "Tensor-parallel size (GPUs per model replica); 0 only with gpus=0.",
        range=NON_NEGATIVE)
    dp: int = setting(1, "Data-parallel size (model replicas); 0 only with gpus=0.", range=NON_NEGATIVE)
    gpus: int = setting(1, "GPUs the server uses; must equal tp x dp. 0 (with tp=0, dp=0): a server that "
        "needs no GPU, such as user_sim=rule_based's rule-based user simulator (not an LLM; smoke runs only).",
        range=NON_NEGATIVE)
    model_path: str = setting(MISSING, "HuggingFace id or local path of the user-simulator weights.")
    served_model_name: str = setting(MISSING, "Model name the server answers to; econfig.user_llm is "
        "openai/<this> and the record is named after it.")
    record_file: str = setting(MISSING, "JSON record of the running server (URL, job id or pid, logs); "
        "training and eval read econfig.user_llm_base_url from it. Shared storage on Slurm.")
    log_dir: str = setting(MISSING, "Where the server's logs (and Slurm job files) go.")
    slurm: UserSimSlurmSpec = setting(help="The server's Slurm job (cluster=slurm).",
        factory=UserSimSlurmSpec)


@dataclass
class TrainerSpec:
    """Which trainer `mode=train` hands the composed config to, and the episode settings
    only the trainer call needs."""

    _target_: str = setting("tau2train.launch.trainer.PPOTrainer", "Import path of the trainer class, called "
        "as cls(config, train_dataset=..., valid_dataset=...).train(...). The default is AReaL's PPOTrainer "
        "with its Slurm workers placed as actor.scheduling_spec says.")
    episode_timeout: float = setting(600.0, "Seconds a training episode may take; a slower one is discarded.",
        range=POSITIVE)
    valid_temperature: float = setting(0.6, "Sampling temperature of the validation episodes (upstream: 0.6).",
        range=TEMPERATURE)
    cpu_only: bool = setting(False, "cluster=local without the layout's GPUs: let the run start on CPUs (a "
        "rehearsal or test with actor.backend=fsdp on CPU and a CPU inference server); false refuses to start "
        "when this machine has fewer GPUs than cluster.n_gpus_per_node (mode=sft too).")


# AReaL's learning-rate schedules (OptimizerConfig.lr_scheduler_type).
LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class SFTSpec:
    """`mode=sft`: supervised fine-tuning with AReaL's SFT trainer on the AReaL-tau2-data SFT
    file (data=areal_tau2), loss on each example's answer turn only. Defaults: the paper's
    recipe (arXiv 2601.22607: 10 epochs, lr 1e-5, cosine)."""

    _target_: str = setting("areal.trainer.sft_trainer.SFTTrainer", "Import path of the SFT trainer class, "
        "called as cls(SFTConfig, train_dataset=...) then .train(); AReaL's SFTTrainer by default (tests put "
        "a recording stand-in here).")
    correct_only: bool = setting(True, "Train on examples of successful dialogs only (metadata.correct == 1, "
        "~24.8k of the 33.5k); false keeps the failed dialogs' examples too.")
    epochs: int = setting(10, "Passes over the kept examples (AReaL's total_train_epochs).",
        range=AT_LEAST_ONE)
    lr: float = setting(1.0e-5, "Peak learning rate (the actor's optimizer.lr during SFT).", range=POSITIVE)
    lr_scheduler_type: str = setting("cosine", "Learning-rate schedule over the SFT steps.",
        choices=list(LR_SCHEDULES))
    warmup_steps_proportion: float = setting(0.03, "Share of the SFT steps spent warming the learning rate "
        "up.", range=Range(0, 1))
    batch_size: int = setting(64, "Examples per optimizer step (AReaL's train_dataset.batch_size during SFT; "
        "not stated in the paper).", range=AT_LEAST_ONE)
    max_length: int = setting(32768, "Tokens an example may have (prompt + answer); longer ones are left out "
        "and counted in the log (the paper's 32k context).", range=AT_LEAST_ONE)
