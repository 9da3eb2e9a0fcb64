"""The command line's work once AReaL is loaded: Hydra's printing verbs, and every run, Slurm
submission and sweep, each composed and validated before anything is written, started or
submitted (tau2train.run answers --help and typos before this module is imported).
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings

import hydra
from omegaconf import DictConfig

from tau2train.compat.areal import restore_stdlib_logging
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.overrides import CONFIG_MODULE, CONFIG_NAME, MULTIRUN_FLAGS
from tau2train.config.registry import register
from tau2train.launch.clusters import backend
from tau2train.launch.clusters.local import Terminated
from tau2train.launch.evaluate import EvalIncomplete, EvalServerFailed
from tau2train.launch.preview import preview
from tau2train.launch.process_state import quiet_until_exit
from tau2train.launch.recipe import StageFailed
from tau2train.launch.stale import check_user_sim_record
from tau2train.launch.sweeps import hydra_sweeper, prepare, run_hydra_sweep
from tau2train.launch.watch import RunStopped
from tau2train.records.overrides import override_key

# Exit status when a server the run started (an evaluated checkpoint's) failed, one it
# talks to (a user simulator) stayed down, an evaluation's episodes failed outside the agent
# past eval.max_infra_failure_rate, or a stage of mode=recipe failed.
SERVER_FAILED_EXIT_CODE = 1
# Flags that make Hydra print something instead of running the job (--resolve and
# --package only modify --cfg/--help and travel with them).
HYDRA_VERBS = (
    "--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c",
    "--shell-completion", "-sc", "--version",
)


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base=None)
def _hydra_main(cfg: DictConfig) -> None:
    """Only Hydra's printing verbs are routed here, and Hydra answers them without running
    the task; reaching this body means a verb was not one."""
    print(f"error: nothing to run for {sys.argv[1:]}; see --help", file=sys.stderr)
    sys.exit(BAD_INPUT_EXIT_CODE)


def _hydra_verb(argv: list[str]) -> None:
    """Hydra's @main reads sys.argv: it gets the verb's, then sys.argv is put back."""
    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        _hydra_main()
    finally:
        sys.argv = saved


def execute(argv: list[str]) -> None:
    """Run, submit or sweep what `argv` (normalised overrides and flags) describes; bad input
    ends in SystemExit(2) with one message."""
    register()
    restore_stdlib_logging()  # AReaL swapped it as it loaded
    if any(override_key(a) in HYDRA_VERBS for a in argv):
        _hydra_verb(argv)
        return
    try:
        if any(a in MULTIRUN_FLAGS for a in argv) and hydra_sweeper(argv):
            run_hydra_sweep([a for a in argv if a not in MULTIRUN_FLAGS])
            return
        jobs = prepare(argv)
        for job in jobs:
            check_user_sim_record(job.config)
        if jobs[0].config.dry_run:
            preview(jobs)
        else:
            backend(jobs[0].config).launch(jobs)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    except (EvalServerFailed, EvalIncomplete, StageFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(SERVER_FAILED_EXIT_CODE)
    except KeyboardInterrupt as stop:
        # Ctrl-C, SIGTERM or a watch's stop (launch/watch.py): what the run started has
        # been stopped on the way here.
        quiet_the_unwinding()
        if isinstance(stop, RunStopped):  # a user simulator down too long, a host lost
            print(f"error: {stop}", file=sys.stderr)
            sys.exit(SERVER_FAILED_EXIT_CODE)
        terminated = isinstance(stop, Terminated)
        print(f"stopped by {'SIGTERM' if terminated else 'Ctrl-C'}", file=sys.stderr)
        sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))


def quiet_the_unwinding() -> None:
    """Requests cut off mid-flight (httpx/anyio connects) leave coroutines that Python would
    report, at exit, after the last message as "never awaited": noise, not news. Likewise the
    episode threads still unwinding (their requests' tasks fail on the closed loop: "Task
    exception was never retrieved", "exception calling callback"), and their tasks still
    pending when the interpreter is torn down."""
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    for name in ("asyncio", "concurrent.futures"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    quiet_until_exit()
