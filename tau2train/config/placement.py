"""Where a `cluster=slurm` run's processes go, and what its Slurm job asks for.

- **single_job**: a layout that fits on one node runs as one Slurm job holding that node's GPUs,
  with CPUs and memory for the controller and every worker; AReaL's *local* scheduler starts the
  workers inside it.
- **per_role_jobs**: a multi-node layout submits AReaL's controller as a job without GPUs;
  AReaL's Slurm scheduler then submits one job per role (rollout, trainer), each on whole nodes:
  it raises on a role whose GPUs do not fill its nodes (areal/infra/scheduler/slurm.py:816).

`slurm.placement=auto` (the default) picks single_job for one node and per_role_jobs for more.
conf/cluster/slurm.yaml reads `scheduler.type` and the job's resources (hydra.launcher.*) through
the resolvers registered from here; the plan and validation call the same functions. Each
function takes the composed config as a DictConfig (from a resolver) or as the typed
ExperimentConfig: they read the same attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau2train.schemas.groups import AUTO_PLACEMENT, PLACEMENTS, Placement
from tau2train.schemas.modes import facts

# ${tau2train.areal_scheduler:${slurm.placement},${cluster.n_nodes}}: AReaL's scheduler.type
AREAL_SCHEDULER_RESOLVER = "tau2train.areal_scheduler"
# ${tau2train.slurm_job:<field>}: one field of the SlurmJob the run asks for (hydra.launcher.*)
SLURM_JOB_RESOLVER = "tau2train.slurm_job"


def placement(choice: str, n_nodes: int) -> Placement:
    """The placement `slurm.placement=choice` means for a layout of `n_nodes` nodes (a choice
    not in PLACEMENTS reads as auto: validation refuses it by name afterwards)."""
    if choice in PLACEMENTS and choice != AUTO_PLACEMENT:
        return Placement(choice)
    return Placement.SINGLE_JOB if n_nodes == 1 else Placement.PER_ROLE_JOBS


def areal_scheduler(choice: str, n_nodes: int) -> str:
    """The scheduler AReaL runs inside the submitted job (its scheduler.type)."""
    return "local" if placement(choice, n_nodes) is Placement.SINGLE_JOB else "slurm"


def spans_nodes(config: Any) -> bool:
    """Whether the run's processes may run on several nodes: a training run (mode=train, sft)
    placed per_role_jobs, whose controller and roles are Slurm jobs of their own (every multi-node
    layout is). A single job, and mode=eval's one job, hold one node."""
    if not facts(config.mode).gpu_roles:
        return False
    return placement(config.slurm.placement, config.cluster.n_nodes) is Placement.PER_ROLE_JOBS


def describe(where: Placement, n_nodes: int) -> str:
    if where is Placement.SINGLE_JOB:
        return "one Slurm job on one node; AReaL's local scheduler starts the workers inside it"
    return (f"a controller job without GPUs; AReaL's Slurm scheduler submits one job per role, "
            f"on whole nodes ({n_nodes} in all)")


@dataclass(frozen=True)
class SlurmJob:
    """What the submitted job (one per point of a sweep, always one node) asks Slurm for."""

    placement: Placement | None  # None: mode=eval, which starts no AReaL workers
    gpus_per_node: int | None  # None: no GPU request (no --gpus-per-node line)
    cpus_per_task: int
    mem_gb: int


def eval_server_gpus(config: Any) -> int | None:
    """GPUs a mode=eval job asks for: a checkpoint evaluation serves its model inside the job
    (eval.server.slurm_gpus_per_node, when set, overrides the server's count; 0 asks for none);
    an endpoint evaluation needs none."""
    ev = config.eval
    if ev.checkpoint is None and ev.checkpoint_step is None:
        return None
    asked = ev.server.slurm_gpus_per_node
    gpus = ev.server.gpus if asked is None else asked
    return gpus or None


def slurm_job(config: Any) -> SlurmJob:
    """The Slurm request of a composed run: the controller's own CPUs and memory
    (slurm.cpus_per_task, slurm.mem_gb); a single job adds each of the node's GPU workers'
    (actor.scheduling_spec[0].cpu and .mem per GPU, as AReaL's local scheduler gives them) and
    the node's GPUs (none for a trainer.cpu_only rehearsal)."""
    slurm = config.slurm
    if not facts(config.mode).gpu_roles:  # mode=eval: a checkpoint's server, if any, in the job
        return SlurmJob(None, eval_server_gpus(config), slurm.cpus_per_task, slurm.mem_gb)
    where = placement(slurm.placement, config.cluster.n_nodes)
    if where is Placement.PER_ROLE_JOBS:
        return SlurmJob(where, None, slurm.cpus_per_task, slurm.mem_gb)
    worker = config.actor.scheduling_spec[0]
    gpus = config.cluster.n_gpus_per_node
    return SlurmJob(
        where, None if config.trainer.cpu_only else gpus,
        slurm.cpus_per_task + worker.cpu * gpus, slurm.mem_gb + worker.mem * gpus,
    )


def slurm_job_field(field: str, *, _root_: Any) -> Any:
    """The resolver behind ${tau2train.slurm_job:<field>}."""
    return getattr(slurm_job(_root_), field)


# slurm.<key> -> the sbatch input environment variable that sets the same option (sbatch(1),
# "INPUT ENVIRONMENT VARIABLES"): what reaches the role jobs AReaL's Slurm scheduler submits
# from the controller job, whose sbatch scripts tau2train does not write
# (areal/infra/scheduler/slurm.py:800-835 sets only name, nodes, tasks, CPUs, memory and GPUs).
WORKER_SBATCH_ENV = {
    "partition": "SBATCH_PARTITION",
    "account": "SBATCH_ACCOUNT",
    "qos": "SBATCH_QOS",
    "constraint": "SBATCH_CONSTRAINT",
    "reservation": "SBATCH_RESERVATION",
    "time_minutes": "SBATCH_TIMELIMIT",
}


def worker_sbatch_env(slurm: Any) -> dict[str, str]:
    """The environment under which the controller's sbatch calls give every role job the run's
    partition, account, QOS, node features, reservation and time limit (what `slurm.*` asks of
    the controller's own job), and its --exclusive. Keys left null are left to the cluster."""
    env = {var: str(getattr(slurm, key)) for key, var in WORKER_SBATCH_ENV.items()
           if getattr(slurm, key) not in (None, "")}
    if slurm.exclusive:
        env["SBATCH_EXCLUSIVE"] = "exclusive"
    return env
