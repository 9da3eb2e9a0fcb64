"""Start the user-simulator server (a child process, or a Slurm job through submitit) and
wait until it answers `GET /health`.

Both kinds of server look the same to `wait_healthy`: where it runs (once known), whether
it is gone and why, where its logs are, how to stop it. A server that dies or never gets
healthy is a `ServerFailed` naming its log, with the log's last lines, so the user sees
why without hunting for files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tau2train.records.slurm_queue import SLURM_ENDED, slurm_states
from tau2train.user_sim.job import host_file, serve, server_log

POLL_S = 1.0
HEALTH_TIMEOUT_S = 5.0
STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 20


class ServerFailed(Exception):
    """The server died, or did not answer in time; the message names its log."""


@dataclass
class LocalServer:
    """The server as a child process of this command (its own session, so stopping it
    takes its workers along)."""

    process: subprocess.Popen
    log: Path
    # the host other processes reach it at: loopback, or this machine's name for servers that
    # other machines talk to (cluster=ray's workers)
    address: str = "127.0.0.1"
    logs: list[str] = field(init=False)

    def __post_init__(self):
        self.logs = [str(self.log)]

    @classmethod
    def start(cls, command: list[str], log: Path, address: str = "127.0.0.1") -> LocalServer:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(process, log, address)

    def host(self) -> str | None:
        return self.address

    def gone(self) -> str | None:
        code = self.process.poll()
        return None if code is None else f"exited with status {code}"

    def waiting_for(self) -> str:
        return f"process {self.process.pid} is running"

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class SlurmServer:
    """The server as a Slurm job submitted through submitit (tau2train.user_sim.job.serve)."""

    job: object  # submitit.Job
    # the server's own log first, then submitit's job logs (set-up lines, Slurm's messages)
    logs: list[str] = field(init=False)

    def __post_init__(self):
        paths = self.job.paths
        self.logs = [str(server_log(paths.folder)), str(paths.stdout), str(paths.stderr)]

    @classmethod
    def submit(cls, command: list[str], record_file: str, folder: str, parameters: dict) -> SlurmServer:
        import submitit

        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(**{k: v for k, v in parameters.items() if v not in (None, [], "")})
        try:
            return cls(executor.submit(serve, command, record_file))
        except submitit.core.utils.FailedJobError as error:  # sbatch refused it
            raise ServerFailed(
                f"Slurm refused the user-sim server job: {str(error).strip()}; check "
                "user_sim.slurm.* (partition, account, qos, gpus_per_node, mem_gb, cpus_per_task)"
            ) from None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def host(self) -> str | None:
        path = host_file(self.job.paths.folder)
        return path.read_text().strip() if path.exists() else None

    def gone(self) -> str | None:
        if self.job.paths.result_pickle.exists():
            return f"Slurm job {self.job_id} ended"
        state = self._state()
        if state is not None and (state == "" or state in SLURM_ENDED):
            return f"Slurm job {self.job_id} ended ({state or 'no longer queued'})"
        return None

    def waiting_for(self) -> str:
        state = self._state(with_reason=True)
        return f"Slurm job {self.job_id} is {state or 'unknown to squeue'}"

    def _state(self, with_reason: bool = False) -> str | None:
        """squeue's state of the job; "" once Slurm has forgotten it; None if Slurm can't
        be asked (a busy controller is not a dead job)."""
        states, _ = slurm_states([self.job_id], with_reason)
        return None if states is None else states.get(self.job_id, "")

    def stop(self) -> None:
        subprocess.run(["scancel", self.job_id], capture_output=True)


def log_tail(paths: list[str], lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the first log that has any (the server's own, when it got to run)."""
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace").strip()
        except OSError:
            continue
        if text:
            return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])
    return ""


def describe_logs(paths: list[str]) -> str:
    more = f" (job logs: {', '.join(paths[1:])})" if len(paths) > 1 else ""
    return f"see its log {paths[0]}{more}"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(
    server: LocalServer | SlurmServer, port: int, timeout_s: float,
    name: str = "user-sim", timeout_key: str = "user_sim.startup_timeout_s",
) -> str:
    """Poll the server's GET /health until it answers 200 (returns the OpenAI base URL),
    it dies, or `timeout_s` passes (then it is stopped). Both failures raise ServerFailed;
    the messages call it "the <name> server" and name the `timeout_key` to raise."""
    deadline = time.monotonic() + timeout_s
    while True:
        why = server.gone()
        if why:
            tail = log_tail(server.logs)
            raise ServerFailed(
                f"the {name} server {why} before answering GET /health; {describe_logs(server.logs)}"
                + (f"\n{tail}" if tail else "")
            )
        host = server.host()
        if host and healthy(f"http://{host}:{port}/health"):
            return f"http://{host}:{port}/v1/"
        if time.monotonic() > deadline:
            status = server.waiting_for()
            server.stop()
            where = f"http://{host}:{port}/health" if host else "GET /health"
            raise ServerFailed(
                f"the {name} server did not answer {where} within {timeout_s:g} s ({status}); "
                f"it was stopped; {describe_logs(server.logs)}. If it only needs longer (queue wait, "
                f"weight loading), raise {timeout_key}"
            )
        time.sleep(POLL_S)
