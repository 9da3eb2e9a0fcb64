"""How the controller's watch (tau2train/launch/host_loss.py) reads Slurm's answers about its
role jobs: which node states mean the host is lost, and the message a user gets. The watch on a
real host loss runs in tests/test_areal_multihost.py."""

from __future__ import annotations

import pytest

from tau2train.compat.ray import GcsUnanswered, RayActor, RayNode
from tau2train.launch.host_loss import (
    RAY_HEAD_SILENT_S,
    RayNodeWatch,
    RoleJob,
    lost_message,
    lost_node,
    stop_on_host_loss,
)
from tau2train.launch.watch import RunStopped, Watch, stopping_on


@pytest.mark.parametrize("state, lost", [
    ("alloc*", True),  # allocated, not answering slurmctld: the test cluster's host ~20 s after it died
    ("down*", True),
    ("down", True),
    ("fail", True),
    ("unk*", True),
    ("idle", False),
    ("alloc", False),
    ("mix", False),
    ("drain", False),  # drained by an admin: its jobs run on
    ("drng", False),
    ("comp", False),
])
def test_which_node_states_mean_the_host_is_lost(state, lost):
    assert lost_node(state) is lost


def test_the_message_names_host_role_job_and_what_to_do():
    job = RoleJob("4711", "tau2-qwen3-8b_trial0:rollout", "RUNNING", "gpu017")
    message = lost_message(job, "its job is NODE_FAIL")
    assert message.startswith("host gpu017 was lost: the rollout role's Slurm job 4711 "
                              "(tau2-qwen3-8b_trial0:rollout) ran there, and its job is NODE_FAIL. ")
    assert "Rerun the same command once gpu017 is back or the cluster has another node free" in message
    assert "resumes from the last recover checkpoint" in message


def test_only_areals_slurm_scheduler_is_watched():
    """Under AReaL's local scheduler (one node, one job) there are no role jobs to watch: no
    thread is started and no signal handler installed."""
    import signal
    import threading

    before = signal.getsignal(signal.SIGUSR2), threading.active_count()
    with stop_on_host_loss("local", "e", "t"):
        assert (signal.getsignal(signal.SIGUSR2), threading.active_count()) == before


class Found(Watch):
    """A watch whose check finds its reason once asked (not before: its thread waits an hour)."""

    def __init__(self, reason: str | None):
        super().__init__("test-watch", 3600)
        self.reason = reason

    def check(self):
        return self.reason


class Stopped(RunStopped):
    pass


def test_a_failure_the_watch_explains_ends_the_run_with_the_watchs_message():
    """AReaL's own check of a role job can notice a lost host before the watch does (it raises
    its own error); the run still ends with the watch's message, the first error its cause."""
    import signal

    with (pytest.raises(Stopped, match="host gpu017 was lost") as stopped,
          stopping_on(Found("host gpu017 was lost: ..."), Stopped, signal.SIGUSR2)):
        raise RuntimeError("Job 4711 FAILED")
    assert isinstance(stopped.value.__cause__, RuntimeError)
    # a failure the watch cannot explain stays what it is
    with pytest.raises(RuntimeError, match="Job 4711 FAILED"), stopping_on(Found(None), Stopped, signal.SIGUSR2):
        raise RuntimeError("Job 4711 FAILED")


# ---- cluster=ray: RayNodeWatch over the GCS's nodes and the driver's job's actors, given here

HEAD = RayNode("n1", "10.77.0.11", "t2c1", True, 40001, True)
TRAINER_NODE = RayNode("n2", "10.77.0.12", "t2c2", True, 40002, False)
ROLLOUT_NODE = RayNode("n3", "10.77.0.13", "t2c3", True, 40003, False)


def actor(name, node, state="ALIVE", node_died=False):
    return RayActor(f"id-{name}", name, state, node.node_id, node.ip, node_died, 1)


class FakeRay:
    """What the GCS answers (nodes, this job's actors), changed by the test between checks."""

    def __init__(self):
        self.nodes = [HEAD, TRAINER_NODE, ROLLOUT_NODE]
        self.actors = [actor("actor/0", TRAINER_NODE), actor("rollout/0", ROLLOUT_NODE),
                       actor("proxy-rollout/0", ROLLOUT_NODE), actor("eval-rollout/0", ROLLOUT_NODE)]
        self.answers = True
        self.raylets_answer = True
        self.now = 0.0

    def node_died(self, node):
        self.nodes = [RayNode(n.node_id, n.ip, n.hostname, False, n.raylet_port, n.head) if n is node else n
                      for n in self.nodes]

    def query(self, value):
        if not self.answers:
            raise GcsUnanswered("the GCS did not answer the nodes query in 5 s")
        return value

    def watch(self) -> RayNodeWatch:
        return RayNodeWatch("e", "t", driver=lambda: ("01000000", "10.77.0.11:6380"),
                            nodes=lambda timeout: self.query(self.nodes),
                            actors=lambda job, timeout: self.query([a for a in self.actors if job == "01000000"]),
                            raylet_answers=lambda ip, port, timeout: self.raylets_answer, clock=lambda: self.now)


def test_a_ray_run_whose_nodes_are_alive_goes_on():
    ray = FakeRay()
    watch = ray.watch()
    for _ in range(3):
        assert watch.check() is None
    assert sorted(watch.placed) == ["actor/0", "eval-rollout/0", "proxy-rollout/0", "rollout/0"]


def test_a_dead_rollout_node_stops_the_run_naming_host_role_and_actors():
    ray = FakeRay()
    watch = ray.watch()
    assert watch.check() is None  # the workers seen placed
    ray.node_died(ROLLOUT_NODE)
    message = watch.check()
    assert message.startswith("host t2c3 (10.77.0.13) was lost: the rollout role's Ray workers (rollout/0, "
                              "eval-rollout/0, proxy-rollout/0) ran there, and "
                              "Ray's GCS reports its node dead")
    assert "Rerun the same command once t2c3 is back or the cluster has room" in message
    assert "resumes from the last recover checkpoint (recover.mode=auto)" in message


def test_roles_sharing_the_lost_host_are_all_named():
    ray = FakeRay()
    ray.actors = [actor("actor/0", ROLLOUT_NODE), actor("rollout/0", ROLLOUT_NODE),
                  actor("proxy-eval-rollout/0", ROLLOUT_NODE)]
    watch = ray.watch()
    assert watch.check() is None
    ray.node_died(ROLLOUT_NODE)
    assert watch.check().startswith("host t2c3 (10.77.0.13) was lost: the actor and rollout roles' Ray workers "
                                    "(actor/0, rollout/0, proxy-eval-rollout/0) ran there")


def test_actors_dead_with_their_node_stop_the_run_before_the_node_is_listed_dead():
    ray = FakeRay()
    watch = ray.watch()
    assert watch.check() is None
    ray.actors[0] = actor("actor/0", TRAINER_NODE, state="DEAD", node_died=True)
    assert watch.check().startswith("host t2c2 (10.77.0.12) was lost: the actor role's Ray workers (actor/0) "
                                    "ran there, and Ray reports its actors dead with their node")


def test_a_worker_ended_on_purpose_is_forgotten_and_a_node_never_used_is_not_watched():
    """AReaL deletes a role's actors (evaluation done, the run's end): their node may go later."""
    ray = FakeRay()
    watch = ray.watch()
    assert watch.check() is None
    ray.actors = [ray.actors[0]] + [actor(a.name, ROLLOUT_NODE, state="DEAD") for a in ray.actors[1:]]
    assert watch.check() is None
    ray.node_died(ROLLOUT_NODE)
    assert watch.check() is None
    ray.node_died(HEAD)  # a node no worker of this job ran on (another job's)
    assert watch.check() is None


def test_nothing_is_asked_before_areals_scheduler_connects_the_driver():
    ray = FakeRay()
    watch = RayNodeWatch(driver=lambda: None, nodes=None, actors=None)
    assert watch.check() is None
    ray.now = 10 * RAY_HEAD_SILENT_S
    assert watch.check() is None


def test_a_gcs_silent_past_the_bound_is_a_lost_head():
    ray = FakeRay()
    watch = ray.watch()
    assert watch.check() is None
    ray.answers = False
    ray.now = RAY_HEAD_SILENT_S - 1
    assert watch.check() is None  # a slow answer or two is not a loss
    ray.now = RAY_HEAD_SILENT_S + 1
    message = watch.check()
    assert message.startswith(f"the Ray head t2c1 (10.77.0.11) was lost: its GCS at 10.77.0.11:6380 has not "
                              f"answered for {RAY_HEAD_SILENT_S + 1:.0f} s (the GCS did not answer")
    assert "Rerun the same command once the head is back" in message


def test_after_the_run_failed_a_silent_raylet_names_the_lost_host_at_once():
    """AReaL raises WorkerFailedError ~2 s after the trainer's host goes, ~30 s before the GCS
    declares the node dead: stopping_on's last check looks at the raylets themselves."""
    ray = FakeRay()
    watch = ray.watch()
    assert watch.check() is None
    ray.raylets_answer = False
    assert watch.check() is None  # while the run goes on, only the GCS's verdict counts
    watch.stopped.set()
    assert watch.check().startswith("host t2c2 (10.77.0.12) was lost: the actor role's Ray workers (actor/0) "
                                    "ran there, and its raylet at 10.77.0.12:40002 does not answer")


def test_ray_runs_are_watched_and_the_watch_thread_ends_with_the_block():
    import signal
    import threading

    before = signal.getsignal(signal.SIGUSR2)
    with stop_on_host_loss("ray", "e", "t"):
        watches = [t for t in threading.enumerate() if t.name == "tau2train-ray-host-watch"]
        assert len(watches) == 1 and signal.getsignal(signal.SIGUSR2) is not before
    assert signal.getsignal(signal.SIGUSR2) == before and watches[0].stopped.is_set()


def test_a_host_loss_that_ray_get_turns_into_a_bare_keyboardinterrupt_still_names_the_host(monkeypatch):
    """A main thread in ray.get runs the watch's signal handler inside Ray's wait loop, which raises
    a plain KeyboardInterrupt in place of the handler's HostLost (seen on a real host loss)."""
    import threading

    from tau2train.launch import host_loss

    class Lost(Watch):
        def __init__(self, *args):
            super().__init__("test-watch", 0.01)

        def check(self):
            return "host t2c3 (10.77.0.13) was lost: ..."

    monkeypatch.setitem(host_loss.HOST_WATCHES, "ray", Lost)
    stop = threading.Event()
    with (pytest.raises(host_loss.HostLost, match=r"host t2c3 \(10.77.0.13\) was lost") as lost,
          stop_on_host_loss("ray", "e", "t")):
        try:
            stop.wait(5)  # the handler's HostLost arrives here
        except host_loss.HostLost:
            raise KeyboardInterrupt from None  # what ray.get makes of it
    assert type(lost.value.__cause__) is KeyboardInterrupt
    # a Ctrl-C of the user's, the watch having found nothing, stays a Ctrl-C
    monkeypatch.setitem(host_loss.HOST_WATCHES, "ray", lambda *args: Found(None))
    with pytest.raises(KeyboardInterrupt) as interrupted, stop_on_host_loss("ray", "e", "t"):
        raise KeyboardInterrupt
    assert type(interrupted.value) is KeyboardInterrupt
