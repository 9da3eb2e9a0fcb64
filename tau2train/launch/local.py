"""Running one prepared job in this process: its dry run (plan and AReaL config), training, or
an evaluation."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from tau2train.config.compose import Composed
from tau2train.launch.evaluate import render_eval_plan, run_eval
from tau2train.launch.plan import render_plan, slurm_submission, write_areal_config
from tau2train.launch.sft import render_sft_plan, run_sft, write_sft_config
from tau2train.launch.train import run_training
from tau2train.rollout.task_set import use as use_task_set


def dry_run(composed: Composed) -> None:
    """The mode's plan (and the AReaL config it writes); on Slurm, the job it would submit."""
    exp = composed.config
    if exp.mode == "eval":
        print(render_eval_plan(exp))
    elif exp.mode == "sft":
        print(render_sft_plan(composed, write_sft_config(exp)))
    else:
        print(render_plan(composed, write_areal_config(exp)))
    if exp.on_slurm:
        print("\n" + slurm_submission(composed))


def run_here(composed: Composed) -> None:
    """Run one prepared job in this process."""
    exp = composed.config
    use_task_set(exp.econfig)  # tau2 reads econfig.tau2_data_dir in this process from here on
    if exp.dry_run:
        dry_run(composed)
    elif exp.mode == "eval":
        run_eval(exp)
    elif exp.mode == "sft":
        run_sft(composed)
    else:
        run_training(exp)


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
