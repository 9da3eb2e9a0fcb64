"""cluster=ray across hosts: a Ray cluster over the several-host test cluster (the `ray_cluster`
fixture: the head on t2c1 with no CPUs for workers, a worker node on t2c2 and t2c3, each with
this machine's CPUs; tests/helpers/ray_cluster.py), joined the way users join one: the command
runs on the head node (a Ray driver joins through its own node's raylet), `cluster=ray
ray.address=<head>:<port>`.

The run asks each worker for a node's CPUs, so AReaL's Ray scheduler places the actor and the
rollout on different nodes; Ray's own records (its actor table) say where each ran. Step 1 runs
and is saved; then the rollout's host is lost during step 2: the run must stop with one message
naming the host and the role, leave no worker of it running, and, rerun once the host is back,
resume from step 1's checkpoint. Before any of it, validation refuses the same command typed on
a machine that is no node of the cluster. The user simulator listens on the bridge (this
machine, as the hosts see it).
Runtime: ~6-8 min on 2 cores.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import areal_run
from helpers.areal_run import cpu_train_args, plain, run_env, step_stats
from helpers.cli import job_state, run_cli, wait_for
from helpers.plain_user import PlainUserLLM

from tau2train.config.errors import BAD_INPUT_EXIT_CODE
from tau2train.serving.tiny_qwen import tiny_qwen_dir

pytestmark = [pytest.mark.areal, pytest.mark.slurm, pytest.mark.multihost, pytest.mark.slow,
              pytest.mark.timeout(1800)]

EXPERIMENT, TRIAL = "tau2-tiny-ray", "ray0"
ROLES = ("actor", "rollout")
LOST_ROLE = "rollout"
TOTAL_STEPS = 2  # step 1 saved; the host is lost during step 2; the resumed run does step 2
RUN_DEADLINE_S = 900
# from the host's loss to the run's end: the GCS marks the node dead ~30 s later, the watch
# asks every 5 s, the trainer's way out deletes the workers
STOP_DEADLINE_S = 180
# the run's actors in Ray's actor table, per Ray job: [[name, state, node ip], ...]
ACTORS = """\
import json, ray
from ray._private import state
ray.init(logging_level="ERROR", log_to_driver=False)
jobs = {}
for a in state.actors().values():
    if a.get("Name"):
        jobs.setdefault(a["JobID"], []).append([a["Name"], a["State"], a["Address"].get("IPAddress")])
print(json.dumps(jobs))
"""


@dataclass
class Lost:
    host: str
    run_dir: Path
    error: str
    stopped_after_s: float  # from the host's loss to the run's end
    placed: dict[str, str]  # role -> the host Ray ran its worker on (Ray's actor table)
    left: list[str]  # the run's actors Ray still had alive once it ended


@pytest.fixture(scope="module")
def user_sim(host_user_sim):
    return host_user_sim


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return areal_run.shared_root(tmp_path_factory, "ray")


def command(ray_cluster, root: Path, user_sim: PlainUserLLM) -> list[str]:
    cpus = ray_cluster.spec.cpus  # a worker node's CPUs: one worker per node
    return [
        *cpu_train_args(root, tiny_qwen_dir(), user_sim.base_url + "/", EXPERIMENT, TRIAL),
        *areal_run.saved_every_step(TOTAL_STEPS),
        "cluster=ray",
        f"ray.address={ray_cluster.address}",
        # the test hosts' /tmp is this machine's, shared as NFS would be
        f"ray.shared_paths=[{root}]",
        # tau2train's CPU worker, which Ray does not run as a command: its setup hook patches the
        # workers (TAU2TRAIN_CPU_SERVER: the tests' CPU server, forcing the completions)
        "actor.scheduling_spec.0.cmd=python3 -m tau2train.serving.rollout_worker",
        f"actor.scheduling_spec.0.cpu={cpus}",
        "actor.scheduling_spec.0.gpu=0",
        "actor.scheduling_spec.0.mem=1",
    ]


def driver_env(ray_cluster, root: Path) -> dict[str, str]:
    env, _ = run_env(root, TRIAL)
    return {**ray_cluster.env(env), "TAU2TRAIN_CPU_SERVER": "helpers.cpu_rollout_worker cpu-sglang"}


def start_on_head(ray_cluster, root: Path, user_sim: PlainUserLLM, log: Path):
    """The command, typed on the head node."""
    argv = [sys.executable, "-m", "tau2train.run", *command(ray_cluster, root, user_sim)]
    with log.open("ab") as out:
        return ray_cluster.hosts.popen(ray_cluster.head, argv, env=driver_env(ray_cluster, root), cwd=str(root),
                                       stdout=out, stderr=out)


def main_log(root: Path) -> str:
    return areal_run.main_log(root, EXPERIMENT, TRIAL)


def ray_actors(ray_cluster, root: Path) -> dict[str, list[list[str]]]:
    """{Ray job id: [[actor name, state, node ip], ...]}, from Ray's actor table (asked on the head)."""
    done = ray_cluster.hosts.run(ray_cluster.head, [sys.executable, "-c", ACTORS], env=driver_env(ray_cluster, root),
                                 timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def placed_roles(ray_cluster, jobs: dict[str, list[list[str]]]) -> tuple[str, dict[str, str]]:
    """The (first) Ray job that ran the run's roles, and the host each role's worker ran on."""
    by_ip = {ray_cluster.spec.address(h): h for h in ray_cluster.spec.hosts}
    for job in sorted(jobs):
        names = {name: ip for name, _, ip in jobs[job]}
        if all(f"{role}/0" in names for role in ROLES):
            return job, {role: by_ip.get(names[f"{role}/0"], names[f"{role}/0"]) for role in ROLES}
    raise AssertionError(f"no Ray job ran {ROLES}: {jobs}")


def test_a_machine_outside_the_cluster_is_refused_before_anything_starts(ray_cluster, shared, user_sim):
    """Typed here (this machine runs no Ray node): the cluster answers, has room, and the
    command is refused naming ray.address and the fix, without a run directory."""
    root = shared / "outside"
    root.mkdir()
    env, _ = run_env(root, "outside")
    result = run_cli(*command(ray_cluster, root, user_sim), cwd=root, env={**env, "RAY_ADDRESS": ""})
    assert result.returncode == BAD_INPUT_EXIT_CODE, result.stderr[-3000:]
    assert result.stderr.startswith(f"error: ray.address='{ray_cluster.address}': this machine ("), result.stderr
    assert "is none of the cluster's nodes" in result.stderr
    assert f"run the command on a node of the cluster: its head ({ray_cluster.head})" in result.stderr
    assert not (root / "experiments").exists()


@pytest.fixture(scope="module")
def lost(ray_cluster, shared, user_sim):
    """The run on the head node, its rollout's host lost once step 1 is saved."""
    log = shared / "driver.log"
    run_dir = shared / "experiments" / EXPERIMENT / TRIAL
    driver = start_on_head(ray_cluster, shared, user_sim, log)
    try:
        wait_for(lambda: "Train step 1/" in main_log(shared) or driver.poll() is not None, "step 1 to be done",
                 RUN_DEADLINE_S, lambda: plain(log)[-4000:])
        assert driver.poll() is None, plain(log)[-6000:]
        job, placed = placed_roles(ray_cluster, ray_actors(ray_cluster, shared))
        host = placed[LOST_ROLE]
        down_at = time.monotonic()
        ray_cluster.hosts.take_down(host)
        driver.wait(STOP_DEADLINE_S)
        stopped_after_s = time.monotonic() - down_at
        left = [name for name, state, _ in ray_actors(ray_cluster, shared).get(job, []) if state != "DEAD"]
        ray_cluster.restore(host)
        record = json.loads((run_dir / "job.json").read_text())
        yield Lost(host, run_dir, record.get("error") or plain(log)[-6000:], stopped_after_s, placed, left)
    finally:
        if driver.poll() is None:
            driver.kill()
        for down in ray_cluster.hosts.state().get("down", []):
            ray_cluster.restore(down)


@pytest.fixture(scope="module")
def resumed(lost, ray_cluster, shared, user_sim):
    """The host back, and the same command again, run to its end."""
    log = shared / "driver-resumed.log"
    driver = start_on_head(ray_cluster, shared, user_sim, log)
    try:
        driver.wait(RUN_DEADLINE_S)
        return lost.run_dir, plain(log)
    finally:
        if driver.poll() is None:
            driver.kill()


def test_the_roles_run_on_different_nodes_as_rays_records_say(lost, ray_cluster, shared):
    workers = ray_cluster.workers
    assert sorted(lost.placed.values()) == sorted(workers), lost.placed  # not the head: it has no CPUs
    print(f"\nRay placed: {lost.placed}; the Ray cluster started in {ray_cluster.startup_s} s, "
          f"{ray_cluster.memory_mb} MB of Ray processes")
    # the rollout played against the user simulator at the bridge's address, and wrote its
    # trajectories into the run directory; the actor trained step 1
    assert list((lost.run_dir / "generated").glob("*/*/*.json"))
    assert step_stats(main_log(shared))[1]["ppo_actor/update/update_successful"] == 1


def test_a_host_lost_mid_run_stops_it_with_one_message_naming_host_and_role(lost):
    assert job_state(lost.run_dir) == "failed", lost.error
    assert lost.error.startswith("HostLost: "), lost.error
    assert f"host {lost.host}" in lost.error and f"the {LOST_ROLE} role's Ray workers" in lost.error, lost.error
    assert "Rerun the same command" in lost.error
    print(f"\nhost {lost.host} lost -> run ended {lost.stopped_after_s:.0f} s later: {lost.error}")
    assert lost.stopped_after_s < STOP_DEADLINE_S
    assert lost.left == [], lost.left  # no worker of the run alive in Ray once it ended


def eval_command(ray_cluster, root: Path, user_sim: PlainUserLLM, run_dir: Path) -> list[str]:
    """mode=eval of the run's latest checkpoint, served by the CPU server inside the evaluation."""
    return [
        "mode=eval", "domain=mock", "tracking=none", "model=tiny_qwen3", f"model.path={tiny_qwen_dir()}",
        f"eval.checkpoint={run_dir}", "eval.num_trials=1", "eval.max_concurrency=2", "eval.split=all",
        "eval.server.server_module=tau2train.serving.cpu_sglang", "eval.server.extra_args=[--torch-threads,1]",
        "+eval.gen_args.max_tokens=32", f"econfig.user_llm_base_url={user_sim.base_url}/", "econfig.user_llm=openai/user",
        f"experiment_name={EXPERIMENT}-eval", "trial_name=ray", f"cluster.fileroot={root}/experiments",
        f"cluster.name_resolve.nfs_record_root={root}/name_resolve",
        "cluster=ray", f"ray.address={ray_cluster.address}", f"ray.shared_paths=[{root}]",
    ]


@pytest.fixture(scope="module")
def evaluated(resumed, ray_cluster, shared, user_sim):
    """The resumed run's checkpoint evaluated, the command typed on the head node."""
    run_dir, _ = resumed
    argv = [sys.executable, "-m", "tau2train.run", *eval_command(ray_cluster, shared, user_sim, run_dir)]
    done = ray_cluster.hosts.run(ray_cluster.head, argv, env=driver_env(ray_cluster, shared), timeout=RUN_DEADLINE_S,
                                 cwd=str(shared))
    return done, shared / "experiments" / f"{EXPERIMENT}-eval" / "ray"


def test_rerun_once_the_host_is_back_resumes_from_the_last_checkpoint(resumed, shared):
    run_dir, log = resumed
    assert job_state(run_dir) == "completed", log[-6000:]
    areal_log = main_log(shared)
    assert areal_run.resumed_steps(areal_log) == (["1"], ["1", str(TOTAL_STEPS)]), areal_log[-6000:]


def test_an_evaluation_runs_as_a_ray_task_on_a_worker_node(evaluated, ray_cluster):
    done, eval_dir = evaluated
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    record = json.loads((eval_dir / "job.json").read_text())
    assert record["state"] == "completed" and record["host"] in ray_cluster.workers, record
    assert "evaluating as a Ray task" in done.stdout
    [metrics] = eval_dir.rglob("metrics.json")
    assert json.loads(metrics.read_text())
