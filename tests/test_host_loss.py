"""How the controller's watch (tau2train/launch/host_loss.py) reads Slurm's answers about its
role jobs: which node states mean the host is lost, and the message a user gets. The watch on a
real host loss runs in tests/test_areal_multihost.py."""

from __future__ import annotations

import pytest

from tau2train.launch.host_loss import RoleJob, lost_message, lost_node, stop_on_host_loss
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
