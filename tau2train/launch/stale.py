"""State an earlier run left behind, found before a new one starts.

AReaL clears its own name-resolve records of the experiment and trial when its scheduler starts
(areal/infra/scheduler/local.py:147, slurm.py:128), and `tau2train-user-sim` replaces a record
whose server no longer answers. What is left is a run that takes `econfig.user_llm_base_url`
from a user-sim record (`user_sim.record_file`) whose server is gone, e.g. killed without a
chance to remove its record: every episode would then fail on the user simulator, and AReaL
would discard them one by one. That is refused here with one message.
"""

from __future__ import annotations

import os
import socket

from tau2train.config.errors import ConfigError
from tau2train.records.slurm_queue import SLURM_ENDED, slurm_states
from tau2train.records.user_sim import read_record
from tau2train.schemas import ExperimentConfig

KEY = "econfig.user_llm_base_url"


def this_machine(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine."""
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return True
    names = {socket.gethostname(), socket.getfqdn()}
    if host in names:
        return True
    try:
        return socket.gethostbyname(host) in {socket.gethostbyname(n) for n in names}
    except OSError:
        return False


def gone(record: dict) -> str | None:
    """Why the server of a user-sim record is known to be gone, or None (running, or unknown:
    a server whose owner cannot be checked from here is given the benefit of the doubt)."""
    job_id = str(record.get("slurm_job_id") or "")
    if job_id:
        states, _ = slurm_states([job_id])
        if states is None:  # Slurm cannot be asked: unknown
            return None
        state = states.get(job_id)
        if state is None:
            return f"its Slurm job {job_id} is no longer in the queue"
        return f"its Slurm job {job_id} is {state}" if state in SLURM_ENDED else None
    pid = record.get("pid")
    if pid and this_machine(str(record.get("host", ""))):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return f"its process {pid} on this machine has exited"
        except PermissionError:
            return None  # alive, someone else's
    return None


def check_user_sim_record(exp: ExperimentConfig) -> None:
    """Refuse a run whose user-simulator URL comes from the record of a server that is gone."""
    if exp.dry_run or exp.econfig.solo_mode or not exp.user_sim.record_file:
        return
    try:
        record = read_record(exp.user_sim.record_file)
    except ValueError:
        return  # reported by whoever reads it next with its own message
    if not record or record["url"] != exp.econfig.user_llm_base_url:
        return
    why = gone(record)
    if why:
        raise ConfigError(
            KEY,
            exp.econfig.user_llm_base_url,
            f"taken from the user-sim record {exp.user_sim.record_file}, whose server is gone ({why})",
            valid="the URL of a running user-simulator server",
            fix="start the server again with `tau2train-user-sim` (it replaces the stale record), "
            f"or delete {exp.user_sim.record_file} and set {KEY}=http://<host>:<port>/v1/",
        )
