"""cluster=ray: this process is the Ray driver, on a node of the cluster. Before a job starts,
the cluster is checked (tau2train.config.ray_cluster: it answers, has room for every role, this
machine is one of its nodes, they carry this tau2train and AReaL, and no server the workers
talk to is at a loopback host); then the jobs run one after another (a `-m` sweep's points each
with its own run directory and job.json, which the sweep report reads). A training run's
driver runs here, AReaL's Ray scheduler placing each role's workers on the cluster
(PPOTrainer.own_scheduler, compat.areal_ray); an evaluation (mode=eval, no AReaL workers) runs
whole as one Ray task on a node with room for it (its checkpoint's server included)."""

from __future__ import annotations

from tau2train.config.checked import Checked
from tau2train.config.ray_checks import eval_ask, job_asks, resolved_address
from tau2train.config.ray_cluster import check_ray_cluster, check_reached_from_ray, check_room
from tau2train.launch.clusters import Backend
from tau2train.launch.clusters.local import sigterm_unwinds
from tau2train.launch.endpoints import endpoints
from tau2train.launch.jobs import run_recorded


def check_cluster(jobs: list[Checked]) -> None:
    """Each job's cluster, asked once per address, has room for the job (each sweep point's own
    layout) and can run it (ConfigError if not)."""
    asked: dict[str, list] = {}
    for job in jobs:
        exp = job.config
        address = resolved_address(exp)
        if address not in asked:
            asked[address] = check_ray_cluster(exp, job.layout)
        else:
            check_room(address, asked[address], job_asks(exp, job.layout))
        check_reached_from_ray(exp, list(endpoints(job)), asked[address])


def launch_on_ray(jobs: list[Checked]) -> None:
    check_cluster(jobs)
    with sigterm_unwinds():
        for job in jobs:
            if job.layout is None:
                run_as_task(job)
            else:
                run_recorded(job.composed, job)


def run_as_task(job: Checked) -> None:
    """The job, run (and recorded) by one Ray task on a node with its CPUs and its server's
    GPUs; its error, if any, raised here as it was there."""
    import ray

    exp = job.config
    ask = eval_ask(exp)
    cpus, gpus = ask.cpus, ask.gpus
    if not ray.is_initialized():
        ray.init(address=resolved_address(exp), logging_level="ERROR")
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_recorded)
    print(f"evaluating as a Ray task (CPU {cpus:g}, GPU {gpus:g}); its record: {exp.run_dir}/job.json", flush=True)
    try:
        ray.get(task.remote(job.composed, job))
    except ray.exceptions.RayTaskError as error:  # the job's own error, as a run here would raise it
        raise (error.cause or error) from None


def ray_placement(checked: Checked) -> str:
    """The plan's Ray section: the cluster, and what each role asks for."""
    exp = checked.config
    rows = [("cluster", exp.ray.address + (" ($RAY_ADDRESS)" if exp.ray.address == "auto" else "")),
            ("driver", "this process, on a node of the cluster (the trainer's controller); AReaL's Ray "
             "scheduler places the workers")]
    rows += [(ask.role, ask.describe()) for ask in job_asks(exp, checked.layout)]
    rows.append(("checked", "when the run starts: reachable, room for every role, "
                 + ("tau2train and AReaL on every node" if exp.ray.check_nodes else "(node environments: ray.check_nodes=false)")))
    width = max(len(label) for label, _ in rows)
    return "\n".join(["Ray", *(f"  {label:<{width}}  {text}" for label, text in rows)])


BACKEND = Backend(launch=launch_on_ray, plan_section=ray_placement, preflight=check_cluster,
                  sweep_order="run one after another from this machine, each on the Ray cluster")
