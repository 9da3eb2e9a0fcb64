"""Runs in this process: one after another, each recorded in its job.json as a Slurm job is
(so that a local `-m` sweep is reported as one on Slurm), with SIGTERM unwinding as Ctrl-C does,
so that what a run started is stopped on the way out."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from tau2train.config.checked import Checked
from tau2train.launch.clusters import Backend
from tau2train.launch.jobs import run_recorded


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that every `with`/`finally` on the way out
    runs (AReaL's trainer stops its workers and servers in its `__exit__`) as for Ctrl-C."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` instead of ending the process on the spot.
    For runs on this machine only: a Slurm job leaves SIGTERM to submitit, which requeues."""
    def raise_terminated(signum, frame):
        # once: a second SIGTERM must not cut short the clean-up the first one started
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_locally(jobs: list[Checked]) -> None:
    """Run the validated jobs here, one after another, each recorded (a dry run is
    tau2train.launch.preview's)."""
    with sigterm_unwinds():
        for job in jobs:
            run_recorded(job.composed, job)


BACKEND = Backend(launch=run_locally)
