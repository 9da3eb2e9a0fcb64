"""cluster=ray: this process is the Ray driver. Before a job starts, the cluster is checked
(tau2train.config.ray_cluster: it answers, has room for every role, its nodes carry this
tau2train and AReaL, and no server the workers talk to is at a loopback host); then the jobs
run one after another as on this machine (a `-m` sweep's points each with its own run
directory and job.json, which the sweep report reads), AReaL's Ray scheduler placing each
role's workers on the cluster (PPOTrainer.own_scheduler, compat.areal_ray)."""

from __future__ import annotations

from tau2train.config.checked import Checked
from tau2train.config.ray_checks import resolved_address, role_asks
from tau2train.config.ray_cluster import check_ray_cluster, check_reached_from_ray
from tau2train.launch.clusters import Backend
from tau2train.launch.clusters.local import run_locally
from tau2train.launch.endpoints import endpoints


def check_cluster(jobs: list[Checked]) -> None:
    """Each job's cluster, asked once per address: it can run the job (ConfigError if not)."""
    asked: dict[str, list] = {}
    for job in jobs:
        exp = job.config
        address = resolved_address(exp)
        if job.layout is None:  # mode=eval: no workers to place
            continue
        if address not in asked:
            asked[address] = check_ray_cluster(exp, job.layout)
        check_reached_from_ray(exp, list(endpoints(job)), asked[address])


def launch_on_ray(jobs: list[Checked]) -> None:
    check_cluster(jobs)
    run_locally(jobs)


def ray_placement(checked: Checked) -> str:
    """The plan's Ray section: the cluster, and what each role asks for."""
    exp = checked.config
    rows = [("cluster", exp.ray.address + (" ($RAY_ADDRESS)" if exp.ray.address == "auto" else "")),
            ("driver", "this process (the trainer's controller); AReaL's Ray scheduler places the workers")]
    if checked.layout is not None:
        rows += [(ask.role, ask.describe()) for ask in role_asks(exp, checked.layout)]
    rows.append(("checked", "when the run starts: reachable, room for every role, "
                 + ("tau2train and AReaL on every node" if exp.ray.check_nodes else "(node environments: ray.check_nodes=false)")))
    width = max(len(label) for label, _ in rows)
    return "\n".join(["Ray", *(f"  {label:<{width}}  {text}" for label, text in rows)])

BACKEND = Backend(launch=launch_on_ray, plan_section=ray_placement, preflight=check_cluster)
