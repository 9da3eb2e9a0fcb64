"""The user simulator's server, started and recorded for `tau2train-user-sim` (its command
line, typos and --help are tau2train.user_sim.command's, answered before AReaL is loaded)."""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tau2train.config.clusters import cluster_checks
from tau2train.config.compose import compose
from tau2train.config.declared import check_declared
from tau2train.config.endpoints import this_host_name
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.servers import check_server, server_command
from tau2train.config.storage import PLACEHOLDER_PREFIX
from tau2train.config.validate import check_no_secrets
from tau2train.records.user_sim import read_record, remove_record, write_record
from tau2train.schemas import ExperimentConfig, UserSimSpec
from tau2train.user_sim.start import (
    LocalServer,
    ServerFailed,
    SlurmServer,
    healthy,
    log_tail,
    wait_healthy,
)

# Exit status of a server that failed to start or is already running (bad input is 2).
SERVER_FAILED_EXIT_CODE = 1
# user_sim.host values that listen on every interface (no one address to record)
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def slurm_parameters(exp: ExperimentConfig) -> dict:
    """submitit's AutoExecutor parameters of the server job."""
    spec, job = exp.user_sim, exp.user_sim.slurm
    return {
        "name": f"user-sim-{spec.served_model_name}",
        "nodes": 1,
        "tasks_per_node": 1,
        "timeout_min": job.time_minutes,
        "cpus_per_task": job.cpus_per_task,
        "mem_gb": job.mem_gb,
        "gpus_per_node": job.gpus_per_node or None,
        "slurm_partition": job.partition,
        "slurm_account": job.account,
        "slurm_qos": job.qos,
        "slurm_setup": list(job.setup),
    }


def check_spec(exp: ExperimentConfig) -> None:
    """What the server needs that composition cannot check; ConfigError on the first problem."""
    check_declared(exp)  # every declared choice and range (user_sim.port, user_sim.tp, ...)
    spec = exp.user_sim
    if cluster_checks(exp).runs_elsewhere:
        for key, path in (("user_sim.record_file", spec.record_file), ("user_sim.log_dir", spec.log_dir)):
            if path.startswith(PLACEHOLDER_PREFIX) or not Path(path).is_absolute():
                raise ConfigError(
                    key, path,
                    f"cluster={exp.launcher} needs shared storage the server, this machine and the "
                    "training workers all see; this is " + (
                        "a placeholder" if path.startswith(PLACEHOLDER_PREFIX) else "not an absolute path"),
                    valid="an absolute path on shared storage (NFS, Lustre, GPFS, ...)",
                    fix="add cluster.fileroot=/your/shared/storage/... (the record and logs go under it)",
                )
    check_server(spec, "user_sim")


def render_dry_run(exp: ExperimentConfig, choice: str, command: list[str]) -> str:
    spec = exp.user_sim
    host = server_host(exp)
    lines = [
        "tau2train user-sim server (dry run: nothing was started or submitted)",
        "",
        f"  user_sim  {choice}: {spec.model_path} served as '{spec.served_model_name}', "
        f"{spec.gpus} GPUs (tp {spec.tp} x dp {spec.dp})",
        f"  runs as   {host.runs_as}",
        "",
        "Server command:",
        "  " + shlex.join(command),
        "",
        *host.dry_run_lines(exp),
        "",
        f"Then: waits up to {spec.startup_timeout_s:g} s for GET /health on port {spec.port}, and "
        f"records the URL in {spec.record_file};",
        "training and eval jobs with the same cluster.fileroot take it as econfig.user_llm_base_url.",
    ]
    return "\n".join(lines)


def slurm_job_lines(exp: ExperimentConfig) -> list[str]:
    rows = [(k, v) for k, v in slurm_parameters(exp).items() if v not in (None, [], "")]
    width = max(len(k) for k, _ in rows)
    return ["Slurm job (submitit AutoExecutor parameters):",
            *(f"  {k.ljust(width)}  {v}" for k, v in rows),
            f"  {'logs'.ljust(width)}  {exp.user_sim.log_dir}/<job id>/"]


def local_log_lines(exp: ExperimentConfig) -> list[str]:
    return [f"Log: {exp.user_sim.log_dir}/{exp.user_sim.served_model_name}-<time>.log"]


def refuse_if_running(spec: UserSimSpec) -> None:
    """One recorded, healthy server per record; a stale or unreadable record is replaced."""
    try:
        record = read_record(spec.record_file)
    except ValueError:
        return
    if record and healthy(record["url"].rstrip("/").removesuffix("/v1") + "/health"):
        how = (f"scancel {record['slurm_job_id']}" if record.get("slurm_job_id")
               else "Ctrl-C the serve_user_sim that started it")
        raise ServerFailed(
            f"a user-sim server is already recorded in {spec.record_file} and answers at "
            f"{record['url']}; use it, or stop it first ({how})"
        )


def make_record(spec: UserSimSpec, url: str, logs: list[str], slurm_job_id: str | None = None,
                pid: int | None = None) -> dict:
    """What the record holds: where the server is and how to stop it; nothing secret."""
    return {
        "url": url,
        "served_model_name": spec.served_model_name,
        "model_path": spec.model_path,
        "host": url.split("//", 1)[1].split(":", 1)[0],
        "port": spec.port,
        "launcher": "slurm" if slurm_job_id else "local",
        "slurm_job_id": slurm_job_id,
        "pid": pid,
        "logs": logs,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def serve_locally(exp: ExperimentConfig, command: list[str], address: str = "127.0.0.1") -> None:
    """Run the server until Ctrl-C / SIGTERM, with its URL (at `address`) recorded while it is
    healthy."""
    spec = exp.user_sim
    log = Path(spec.log_dir) / f"{spec.served_model_name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _interrupt)
    server = LocalServer.start(command, log, address)
    owner = {"pid": server.process.pid}
    print(f"started the user-sim server (pid {server.process.pid}); log: {log}", flush=True)
    try:
        url = wait_healthy(server, spec.port, spec.startup_timeout_s)
        write_record(spec.record_file, make_record(spec, url, server.logs, pid=server.process.pid))
        print(f"user-sim server '{spec.served_model_name}' is up at {url}\n"
              f"recorded in {spec.record_file}; Ctrl-C stops it", flush=True)
        code = server.process.wait()
        tail = log_tail(server.logs)
        raise ServerFailed(
            f"the user-sim server exited with status {code}; see its log {log}" + (f"\n{tail}" if tail else "")
        )
    except KeyboardInterrupt:
        print("stopping the user-sim server", flush=True)
    finally:
        # a second Ctrl-C must not leave the server running or its record behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            server.stop()
            remove_record(spec.record_file, owner)
        finally:  # then the caller's handlers again (main may run in a longer-lived process)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve_on_slurm(exp: ExperimentConfig, command: list[str]) -> None:
    """Submit the server job, wait until it is healthy, record it and return."""
    spec = exp.user_sim
    server = SlurmServer.submit(command, spec.record_file, f"{spec.log_dir}/%j", slurm_parameters(exp))
    print(f"submitted Slurm job {server.job_id} for the user-sim server; its log: {server.logs[0]}\n"
          f"waiting up to {spec.startup_timeout_s:g} s for it to answer GET /health ...", flush=True)
    try:
        url = wait_healthy(server, spec.port, spec.startup_timeout_s)
    except KeyboardInterrupt:
        server.stop()
        print(f"interrupted: cancelled Slurm job {server.job_id}", file=sys.stderr)
        raise
    write_record(spec.record_file, make_record(spec, url, server.logs, slurm_job_id=server.job_id))
    print(
        f"user-sim server '{spec.served_model_name}' is up at {url} (Slurm job {server.job_id})\n"
        f"  recorded in {spec.record_file}: training and eval jobs with this cluster.fileroot use it\n"
        f"  log:  {server.logs[0]} (job logs: {', '.join(server.logs[1:])})\n"
        f"  stop: scancel {server.job_id}"
    )


def serve_for_ray(exp: ExperimentConfig, command: list[str]) -> None:
    """As on this machine, recorded at this machine's name (or user_sim.host when it names one
    address): the Ray workers playing the episodes reach it from their nodes."""
    host = exp.user_sim.host
    serve_locally(exp, command, this_host_name() if host in WILDCARD_HOSTS else host)


@dataclass(frozen=True)
class ServerHost:
    """Where one cluster backend runs the user simulator's server."""

    runs_as: str  # in the dry run's words
    serve: Callable[[ExperimentConfig, list[str]], None]
    dry_run_lines: Callable[[ExperimentConfig], list[str]]


SERVER_HOSTS = {
    "local": ServerHost("a child process of this command (Ctrl-C stops it)", serve_locally, local_log_lines),
    "slurm": ServerHost("a Slurm job submitted through submitit", serve_on_slurm, slurm_job_lines),
    "ray": ServerHost("a child process of this command (Ctrl-C stops it), recorded at this machine's name for the "
                      "Ray nodes", serve_for_ray, local_log_lines),
}


def server_host(exp: ExperimentConfig) -> ServerHost:
    return SERVER_HOSTS.get(exp.launcher, SERVER_HOSTS["local"])


def serve(argv: list[str]) -> None:
    """Compose the experiment `argv` describes, check its user-simulator settings, and start
    (or, with dry_run=true, describe) the server; exits 2 on bad input, 1 when it failed."""
    try:
        composed = compose(argv)
        exp = composed.config
        check_spec(exp)
        check_no_secrets(exp)
        command = server_command(exp.user_sim, exp.user_sim.model_path, exp.user_sim.served_model_name)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    if exp.dry_run:
        print(render_dry_run(exp, composed.choices["user_sim"], command))
        return
    try:
        refuse_if_running(exp.user_sim)
        server_host(exp).serve(exp, command)
    except ServerFailed as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(SERVER_FAILED_EXIT_CODE)
    except KeyboardInterrupt:
        sys.exit(130)
