"""cluster=ray before a cluster is needed: the group composes for every model, the plan says what
each role asks Ray for, bad addresses and node-local paths are refused with the key and the fix,
an address nobody answers is refused within its timeout without writing a run directory, and the
checks on a cluster's answer (room, environments, loopback servers) read RayNode records as
tau2train.config.ray_nodes writes them. A real cluster's answers: tests/test_areal_ray.py."""

from __future__ import annotations

import socket
import time

import pytest
from helpers.cli import USER_SIM, ray_overrides

from tau2train.config.compose import compose
from tau2train.config.endpoints import this_host_name
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.ray_checks import eval_ask, role_asks
from tau2train.config.ray_cluster import check_environments, check_reached_from_ray, check_room
from tau2train.config.ray_nodes import installed
from tau2train.launch.modes import checked, plan
from tau2train.records.ray_nodes import RayNode
from tau2train.user_sim.serve import render_dry_run

QWEN3_8B = ["model=qwen3_8b"]  # 3 nodes: 16 rollout GPUs (sglang:d16) + 8 trainer GPUs (archon:d8)


def ray_job(tmp_path, *extra: str):
    return checked(compose([USER_SIM, *ray_overrides(tmp_path), "tracking=none", *extra]))


def test_the_plan_shows_what_each_role_asks_ray_for(tmp_path):
    job = ray_job(tmp_path, *QWEN3_8B)
    text = plan(job)
    ray = text[text.index("\nRay\n"):]
    assert "  cluster  ray-head:6379" in ray
    assert "rollout  16 workers x {CPU 4, GPU 1, memory 32 GB}, shared placement group" in ray
    assert "actor    8 workers x {CPU 4, GPU 1, memory 32 GB}, shared placement group" in ray
    assert "reachable, room for every role, tau2train and AReaL on every node" in ray


def test_a_rollout_server_of_several_gpus_is_one_worker(tmp_path):
    job = ray_job(tmp_path, "model=qwen3_30b_a3b")  # sglang:d8t4: 8 servers of 4 GPUs
    rollout = next(a for a in role_asks(job.config, job.layout) if a.role == "rollout")
    assert (rollout.workers, rollout.gpus) == (8, 4)


@pytest.mark.parametrize("address, words", [
    ("ray://head:10001", "a ray:// Ray Client address"),
    ("head", "is not the host:port of a Ray head's GCS"),
    ("head:99999", "is not the host:port of a Ray head's GCS"),
])
def test_an_address_that_is_no_gcs_is_refused(tmp_path, address, words):
    with pytest.raises(ConfigError) as refused:
        ray_job(tmp_path, f"ray.address={address}")
    assert refused.value.key == "ray.address" and words in str(refused.value)


def test_a_node_local_fileroot_is_refused_unless_stated_shared(tmp_path):
    with pytest.raises(ConfigError) as refused:
        checked(compose([USER_SIM, "cluster=ray", "ray.address=head:6379", "tracking=none",
                         "cluster.fileroot=/tmp/tau2-exp", f"cluster.name_resolve.nfs_record_root={tmp_path}/nr"]))
    assert refused.value.key == "cluster.fileroot"
    assert "/tmp is local to each node; Ray's workers, on whichever nodes have room, need shared storage" \
        in str(refused.value)
    assert "ray.shared_paths=[/tmp/tau2-exp]" in str(refused.value)
    checked(compose([USER_SIM, "cluster=ray", "ray.address=head:6379", "tracking=none", "ray.shared_paths=[/tmp]",
                     "cluster.fileroot=/tmp/tau2-exp", f"cluster.name_resolve.nfs_record_root={tmp_path}/nr"]))


def test_workers_asking_nothing_are_refused(tmp_path):
    with pytest.raises(ConfigError) as refused:
        ray_job(tmp_path, "model=tiny_qwen3", "actor.scheduling_spec.0.cpu=0", "actor.scheduling_spec.0.gpu=0")
    assert refused.value.key == "rollout.scheduling_spec.0.cpu" and "its head included" in str(refused.value)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_nobody_answers_is_refused_in_time_and_writes_nothing(cli, tmp_path):
    started = time.monotonic()
    result = cli(USER_SIM, *ray_overrides(tmp_path, f"127.0.0.1:{closed_port()}"), "model=tiny_qwen3",
                 "ray.connect_timeout_s=3", "tracking=none", cwd=tmp_path)
    assert result.returncode == BAD_INPUT_EXIT_CODE, result.stderr
    assert result.stderr.startswith("error: ray.address='127.0.0.1:"), result.stderr
    assert "no Ray head answers there" in result.stderr and "ray start --head" in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "experiments").exists(), list((tmp_path / "experiments").rglob("*"))


def test_auto_without_ray_address_is_refused_when_the_run_starts(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = cli(USER_SIM, *ray_overrides(tmp_path, "auto"), "model=tiny_qwen3", "tracking=none", cwd=tmp_path)
    assert result.returncode == BAD_INPUT_EXIT_CODE
    assert "error: ray.address='auto': auto means the cluster $RAY_ADDRESS names" in result.stderr, result.stderr


def node(ip: str, cpus=8.0, gpus=8.0, memory_gb=512.0, **env) -> RayNode:
    return RayNode(ip=ip, alive=True, cpus=cpus, gpus=gpus, memory_gb=memory_gb, **env)


def test_room_is_checked_per_worker_and_in_all(tmp_path):
    job = ray_job(tmp_path, *QWEN3_8B)
    asks = role_asks(job.config, job.layout)
    check_room("h:1", [node(f"10.0.0.{i}", cpus=32, memory_gb=256) for i in range(3)], asks)  # 24 workers
    with pytest.raises(ConfigError) as refused:
        check_room("h:1", [node(f"10.0.0.{i}", cpus=64, memory_gb=512) for i in range(2)], asks)
    assert "ask for 24 GPUs in all" in str(refused.value) and "have 16" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        check_room("h:1", [node("10.0.0.1", cpus=2)], asks)
    assert "no node has room for the rollout (16 workers x {CPU 4, GPU 1" in str(refused.value)
    assert "10.0.0.1: CPU 2, GPU 8, memory 512 GB" in str(refused.value)


def test_an_evaluation_is_one_task_asking_its_servers_gpus_and_none_for_the_cpu_server(tmp_path):
    run_dir = tmp_path / "exp" / "run"
    common = [USER_SIM, *ray_overrides(tmp_path), "tracking=none", "mode=eval", f"eval.checkpoint={run_dir}",
              "dry_run=true"]
    served = eval_ask(compose([*common, "eval.server.gpus=2", "eval.server.tp=2"]).config)
    assert (served.workers, served.cpus, served.gpus) == (1, 1.0, 2.0)
    cpu = eval_ask(compose([*common, "eval.server.server_module=tau2train.serving.cpu_sglang"]).config)
    assert cpu.gpus == 0.0 and cpu.describe() == "one Ray task on a node with room for {CPU 1, GPU 0}"
    with pytest.raises(ConfigError) as refused:
        check_room("h:1", [node("10.0.0.1", gpus=0)], [served])
    assert "no node has room for the eval (one Ray task on a node with room for {CPU 1, GPU 2})" in str(refused.value)


def test_each_node_must_carry_this_tau2train_and_areal():
    tau2train, areal = installed()
    assert tau2train and areal  # this environment's, which the nodes are compared with
    check_environments("h:1", [node("10.0.0.1", tau2train=tau2train, areal=areal)])
    with pytest.raises(ConfigError) as refused:
        check_environments("h:1", [node("10.0.0.1", tau2train=tau2train, areal=areal),
                                   node("10.0.0.2", tau2train="", areal="1.0.3")])
    assert f"node 10.0.0.2's Python environment differs: tau2train missing (here {tau2train}), " \
        f"areal 1.0.3 (here {areal})" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        check_environments("h:1", [node("10.0.0.3", problem="GetTimeoutError: ...")])
    assert "could not be read (GetTimeoutError" in str(refused.value)


def test_a_loopback_server_is_refused_once_a_node_is_elsewhere(tmp_path):
    job = ray_job(tmp_path, "model=tiny_qwen3")
    check_reached_from_ray(job.config, list(job.user_sims), [node("127.0.0.1")])  # a one-machine cluster
    with pytest.raises(ConfigError) as refused:
        check_reached_from_ray(job.config, list(job.user_sims), [node("127.0.0.1"), node("10.9.9.2")])
    assert refused.value.key == "econfig.user_llm_base_url"
    assert "from their Ray nodes (10.9.9.2)" in str(refused.value) and "tau2train-user-sim cluster=ray" in str(refused.value)


def test_the_user_simulator_is_recorded_at_this_machines_name_for_ray(tmp_path):
    composed = compose(["cluster=ray", "user_sim=rule_based", f"cluster.fileroot={tmp_path}/exp"])
    text = render_dry_run(composed.config, "rule_based", ["server"])
    assert "runs as   a child process of this command (Ctrl-C stops it), recorded at this machine's name" in text
    assert this_host_name()  # what the record names


def test_a_sweep_runs_its_points_one_after_another_each_on_the_cluster(cli, tmp_path):
    result = cli("-m", "dry_run=true", "domain=airline,retail", USER_SIM, *ray_overrides(tmp_path), "tracking=none",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("Sweep of 2 points (dry run: nothing was started or submitted): run one after another from this "
            "machine, each on the Ray cluster") in result.stdout
    assert "tau2-qwen3-1.7b-airline/trial0" in result.stdout and "tau2-qwen3-1.7b-retail/trial0" in result.stdout


def test_each_sweep_point_is_checked_for_room_on_the_cluster_they_share(tmp_path, monkeypatch):
    """The cluster is asked once per address (its answer stood in for here: two 4-CPU nodes),
    and every point's own layout must fit it: a sweep's second point refused by its own ask."""
    from tau2train.launch.clusters import ray as ray_backend

    asked = []
    nodes = [node("10.0.0.1", cpus=4, gpus=0, memory_gb=64), node("10.0.0.2", cpus=4, gpus=0, memory_gb=64)]
    monkeypatch.setattr(ray_backend, "check_ray_cluster", lambda exp, layout: asked.append(exp) or nodes)
    monkeypatch.setattr(ray_backend, "check_reached_from_ray", lambda *args: None)
    small = ray_job(tmp_path, "model=tiny_qwen3", "actor.scheduling_spec.0.gpu=0", "actor.scheduling_spec.0.cpu=2")
    big = ray_job(tmp_path, "model=tiny_qwen3", "actor.scheduling_spec.0.gpu=0", "actor.scheduling_spec.0.cpu=8")
    ray_backend.check_cluster([small, small])
    with pytest.raises(ConfigError) as refused:
        ray_backend.check_cluster([small, big])
    assert len(asked) == 2  # once per check_cluster call: one address
    assert "no node has room for the rollout (1 worker x {CPU 8, GPU 0" in str(refused.value)
