"""What runs inside the user-simulator server's Slurm job (submitted by tau2train-user-sim).

submitit imports this module on the compute node, so it stays tiny: no config, no AReaL.
It tells the launcher which node the server landed on (a `host` file in the job's
folder: the launcher polls `http://<host>:<port>/health` and records that URL), runs the
server with its output going to the job's log, and, however the job ends (`scancel`, time
limit, the server dying), stops the server and removes the record if it still names this
job, so training never picks up the URL of a server that is gone.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import submitit

from tau2train.records.files import write_atomic
from tau2train.records.user_sim import remove_record

HOST_FILE = "host"
SERVER_LOG = "server.log"
# Seconds the server gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 20.0


def host_file(job_folder: str | Path) -> Path:
    return Path(job_folder) / HOST_FILE


def server_log(job_folder: str | Path) -> Path:
    """The server's own output, apart from submitit's job logs."""
    return Path(job_folder) / SERVER_LOG


def serve(command: list[str], record_file: str) -> None:
    """Run `command` until it exits or the job is told to stop; fail the job if the server
    exits on its own (its output is in server.log in the job's folder)."""
    job = submitit.JobEnvironment()
    write_atomic(host_file(job.paths.folder), socket.gethostname())
    with server_log(job.paths.folder).open("ab") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stopping = False

    def stop(signum, frame):  # scancel / time limit: SIGTERM
        nonlocal stopping
        stopping = True
        server.terminate()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        returncode = server.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                server.kill()
        remove_record(record_file, {"slurm_job_id": job.job_id})
    if not stopping:
        raise RuntimeError(
            f"the user-sim server exited with status {returncode}; see {server_log(job.paths.folder)}"
        )
