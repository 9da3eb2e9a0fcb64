"""A multi-node layout across hosts, and a host lost mid-run, on the several-host test cluster
(tests/helpers/hosts.py: 3 hosts on this machine, each its own name and address on a bridge,
sharing the filesystem as NFS would).

One run, the way multi-node layouts run: `python -m tau2train.run ... cluster=slurm
slurm.placement=per_role_jobs`, in the partition where every job takes a host whole (as GPU
jobs take whole nodes), so AReaL's controller, its actor and its rollout each run on a host of
their own. The user simulator listens on the bridge's address (this machine, as the hosts see
it). Step 1 runs and is saved (a model and a recover checkpoint); then the rollout's host is
lost (every process of it killed, its link down) during step 2. The run must stop with one
message naming the host, the role and the Slurm job, leave nothing running, and, rerun once the
host is back, resume from step 1's checkpoint to the end.
Runtime: ~5-7 min on 2 cores.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import areal_run
from helpers.areal_run import cpu_train_args, plain, run_env, step_stats
from helpers.cli import job_state, run_cli, wait_for
from helpers.hosts import WHOLE_HOSTS, Cluster
from helpers.plain_user import PlainUserLLM

from tau2train.serving.tiny_qwen import tiny_qwen_dir

pytestmark = [pytest.mark.areal, pytest.mark.slurm, pytest.mark.multihost, pytest.mark.slow,
              pytest.mark.timeout(1800)]

EXPERIMENT, TRIAL = "tau2-tiny-multihost", "hosts0"
ROLES = ("actor", "rollout")
LOST_ROLE = "rollout"
TOTAL_STEPS = 2  # step 1 saved; the host is lost during step 2; the resumed run does step 2
RUN_DEADLINE_S = 900
# from the host's loss to the run's end: Slurm sees the node not responding ~SlurmdTimeout
# (20 s) later, the watch asks every 5 s, the trainer's way out gives each lost call 30 s
STOP_DEADLINE_S = 240


@dataclass
class Lost:
    host: str
    job_id: str
    jobs: dict[str, str]  # Slurm job id of the controller and of each role
    run_dir: Path
    log: str
    stopped_after_s: float  # from the host's loss to the job's end
    left: dict[str, list[int]]  # per other host, its processes but its slurmd, once the run ended


def role_jobs(cluster: Cluster) -> dict[str, tuple[str, str, str]]:
    """{role: (job id, state, node)} of this trial's role jobs Slurm lists."""
    out = cluster.slurm("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%N").stdout
    jobs = {}
    for line in out.splitlines():
        job_id, name, state, node = line.split("|")
        if name.startswith(f"{EXPERIMENT}_{TRIAL}:"):
            jobs[name.rsplit(":", 1)[1]] = (job_id, state, node)
    return jobs


def queued(cluster: Cluster) -> list[str]:
    """The run's jobs (controller and roles) Slurm still has pending or running."""
    out = cluster.slurm("squeue", "-h", "-o", "%i|%j|%T").stdout
    return [line for line in out.splitlines() if line.split("|")[1].startswith(EXPERIMENT)]


def main_log(root: Path) -> str:
    return areal_run.main_log(root, EXPERIMENT, TRIAL)


def multihost_processes(cluster: Cluster, host: str) -> list[int]:
    """The host's processes but its slurmd, once the run's jobs there have ended (bounded wait)."""
    slurmd = cluster.daemons()[f"slurmd@{host}"][0]

    def others():
        return [pid for pid in cluster.host_pids(host) if pid != slurmd]

    try:
        wait_for(lambda: not others(), f"the run's processes on {host} to end", 60)
    except AssertionError:
        pass  # the test names them
    return others()


def ended_jobs(cluster: Cluster, jobs: dict[str, str]) -> dict[str, dict[str, str]] | None:
    """{what: Slurm's record} of the jobs `jobs` names ({what: job id}), once all have ended."""
    by_id = cluster.jobcomp_records()
    if not set(jobs.values()) <= set(by_id):
        return None
    return {what: by_id[job_id] for what, job_id in jobs.items()}


def job_log(run_dir: Path) -> str:
    record = json.loads((run_dir / "job.json").read_text())
    return plain(Path(record["stderr"])) + plain(Path(record["stdout"]))


@pytest.fixture(scope="module")
def user_sim(host_user_sim):
    return host_user_sim


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return areal_run.shared_root(tmp_path_factory, "multihost")


def command(root: Path, user_sim: PlainUserLLM) -> list[str]:
    return [
        *cpu_train_args(root, tiny_qwen_dir(), user_sim.base_url + "/", EXPERIMENT, TRIAL),
        *areal_run.saved_every_step(TOTAL_STEPS),
        "cluster=slurm",
        "slurm.placement=per_role_jobs",
        f"slurm.partition={WHOLE_HOSTS}",
        # the test hosts' /tmp is this machine's, shared as NFS would be
        f"slurm.shared_paths=[{root}]",
        "slurm.cpus_per_task=1",
        "slurm.mem_gb=4",
        "slurm.time_minutes=60",
        "actor.scheduling_spec.0.cpu=1",
        "actor.scheduling_spec.0.gpu=0",  # no GRES on the test hosts
        "actor.scheduling_spec.0.mem=2",
    ]


def submit(cluster: Cluster, root: Path, user_sim: PlainUserLLM) -> Path:
    env, _ = run_env(root, TRIAL)
    submitted = run_cli(*command(root, user_sim), cwd=root, env=cluster.env(env))
    assert submitted.returncode == 0, submitted.stderr
    return root / "experiments" / EXPERIMENT / TRIAL


def explain(cluster: Cluster, run_dir: Path):
    def text() -> str:
        log = job_log(run_dir)[-4000:] if (run_dir / "job.json").exists() else ""
        return (f"; squeue:\n{cluster.slurm('squeue').stdout}\nsinfo:\n{cluster.slurm('sinfo').stdout}"
                f"\ncontroller log:\n{log}")
    return text


@pytest.fixture(scope="module")
def lost(multihost, shared, user_sim):
    """The run, its rollout's host taken down once step 1 is saved."""
    cluster = multihost
    run_dir = submit(cluster, shared, user_sim)
    try:
        wait_for(lambda: "Train step 1/" in main_log(shared), "step 1 to be done", RUN_DEADLINE_S,
                 explain(cluster, run_dir))
        running = role_jobs(cluster)
        job_id, state, host = running[LOST_ROLE]
        assert state == "RUNNING" and sorted(running) == sorted(ROLES), running
        jobs = {"controller": json.loads((run_dir / "job.json").read_text())["slurm_job_id"],
                **{role: running[role][0] for role in ROLES}}
        down_at = time.monotonic()
        cluster.take_down(host)
        wait_for(lambda: job_state(run_dir) in ("failed", "completed"), "the run to stop",
                 STOP_DEADLINE_S, explain(cluster, run_dir))
        stopped_after_s = time.monotonic() - down_at
        log = job_log(run_dir)
        # what the other hosts still run is read before the host comes back (test 2)
        left = {h: multihost_processes(cluster, h) for h in cluster.spec.hosts if h != host}
        cluster.bring_up(host)
        yield Lost(host, job_id, jobs, run_dir, log, stopped_after_s, left)
    finally:
        cluster.slurm("scancel", "-n", ",".join([EXPERIMENT, *(f"{EXPERIMENT}_{TRIAL}:{r}" for r in ROLES)]))
        for down in cluster.state().get("down", []):
            cluster.bring_up(down)


@pytest.fixture(scope="module")
def resumed(lost, multihost, shared, user_sim):
    """The host back, and the same command again, run to its end."""
    wait_for(lambda: multihost.all_up(), "every host back in Slurm", 60)
    run_dir = submit(multihost, shared, user_sim)
    try:
        wait_for(lambda: job_state(run_dir) in ("failed", "completed"), "the resumed run to end",
                 RUN_DEADLINE_S, explain(multihost, run_dir))
        return run_dir, job_log(run_dir)
    finally:
        multihost.slurm("scancel", "-n", ",".join([EXPERIMENT, *(f"{EXPERIMENT}_{TRIAL}:{r}" for r in ROLES)]))


def test_a_per_role_layout_runs_its_roles_on_different_hosts(lost, multihost, shared):
    """Before the loss: step 1 ran with AReaL's controller, actor and rollout each on a host
    of its own, in the run's partition, each reaching the others at its host's address, and
    its trajectories and checkpoint are in the run's directory."""
    spec = multihost.spec
    # Slurm's records of the run's three jobs, once each has ended
    ended = wait_for(lambda: ended_jobs(multihost, lost.jobs), "Slurm's records of the run's jobs", 60)
    names = {"controller": EXPERIMENT, **{role: f"{EXPERIMENT}_{TRIAL}:{role}" for role in ROLES}}
    assert {what: r["Name"] for what, r in ended.items()} == names
    hosts = {what: r["NodeList"] for what, r in ended.items()}
    assert sorted(hosts.values()) == sorted(spec.hosts), hosts  # three roles, three hosts
    assert hosts[LOST_ROLE] == lost.host
    assert ended[LOST_ROLE]["JobState"] == "NODE_FAIL", ended
    # slurm.partition reached the role jobs AReaL submitted, not only the controller's job
    assert {r["Partition"] for r in ended.values()} == {WHOLE_HOSTS}, ended
    # each role's worker registered its host's own address (AReaL's name-resolve records,
    # which the controller reads to reach it), not a loopback one
    records = "\n".join(p.read_text() for p in (shared / "name_resolve").rglob("*") if p.is_file())
    for role in ROLES:
        assert spec.address(hosts[role]) in records, (role, hosts[role], records[:2000])
    assert "127.0.0.1" not in records, records[:2000]
    # the rollout played against the user simulator at the bridge's address, and wrote its
    # trajectories into the run directory; the actor saved step 1's weights into it too
    assert list((lost.run_dir / "generated").glob("*/*/*.json"))
    checkpoints = areal_run.areal_dir(shared / "experiments", "checkpoints", EXPERIMENT, TRIAL)
    assert list(checkpoints.glob("default/epoch*globalstep0/*.safetensors")), sorted(checkpoints.rglob("*"))
    stats = step_stats(main_log(shared))
    assert stats[1]["ppo_actor/update/update_successful"] == 1


def test_a_host_lost_mid_run_stops_it_with_one_message_naming_host_role_and_job(lost, multihost):
    record = json.loads((lost.run_dir / "job.json").read_text())
    assert record["state"] == "failed", lost.log[-6000:]
    message = (f"host {lost.host} was lost: the {LOST_ROLE} role's Slurm job {lost.job_id} "
               f"({EXPERIMENT}_{TRIAL}:{LOST_ROLE}) ran there")
    assert message in record["error"], record["error"]
    assert "Rerun the same command once" in record["error"]
    assert record["error"].startswith("HostLost: ")
    print(f"\nhost {lost.host} lost -> run ended {lost.stopped_after_s:.0f} s later: {record['error']}")
    # nothing of the run is left: no job of it in Slurm, no process on the other hosts but slurmd
    wait_for(lambda: not queued(multihost), "the run's jobs to end", 60, lambda: f": {queued(multihost)}")
    assert lost.left == {h: [] for h in multihost.spec.hosts if h != lost.host}, lost.left


def test_rerun_once_the_host_is_back_resumes_from_the_last_checkpoint(resumed, shared):
    run_dir, log = resumed
    assert job_state(run_dir) == "completed", log[-6000:]
    # AReaL's controller log, both runs': the second found step 1's recover checkpoint and did
    # only step 2, which the first never finished
    areal_log = main_log(shared)
    assert areal_run.resumed_steps(areal_log) == (["1"], ["1", str(TOTAL_STEPS)]), areal_log[-6000:]
