"""The base URLs of the servers a run's episodes talk to (the agent endpoint mode=eval scores,
the user simulators, the NL-assertion judge), each checked alike: an http(s) URL with a host.
Whether the OpenAI-compatible API answers there is asked as the run starts
(tau2train.launch.endpoints).

A Slurm job talks to them from its compute node, where a loopback host (localhost, 127.0.0.1,
::1, 0.0.0.0) is the node itself: such a URL is refused before submission unless every node
the job may run on is this machine (a one-node Slurm here: Slurm's node list says so, or
slurm.same_host=true states it). A server the job starts itself (mode=eval's served
checkpoint) is no such URL: the job reaches it on its own node."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tau2train.config.errors import ConfigError
from tau2train.records.user_sim import recorded_url
from tau2train.schemas import ExperimentConfig

SAME_HOST_KEY = "slurm.same_host"
# Every node with its partitions: name|hostname|address|partition (the default one ends in "*").
SINFO = ["sinfo", "-h", "-N", "-o", "%N|%n|%o|%P"]
SINFO_TIMEOUT_S = 30
# How many of the nodes elsewhere a message names.
NODES_SHOWN = 5


def check_base_url(key: str, url: str | None, role: str) -> None:
    """`url`, set at `key`, is the http(s) base URL of a server (`role`: what it is to the run)."""
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    no_scheme = bool(url) and "://" not in url
    raise ConfigError(
        key, url,
        "is not an http(s) URL" + (" (no http:// or https:// in front)" if no_scheme else ""),
        valid=f"the OpenAI-compatible base URL of the {role}, e.g. http://host:8000/v1",
        fix=f"set {key}=http://{url}" if no_scheme else f"set {key}=http://<host>:<port>/v1",
    )


def loopback_host(url: str | None) -> str | None:
    """The URL's host when it is a loopback (or any-interface) address, which names whatever
    machine asks: localhost, 127.0.0.0/8, ::1, 0.0.0.0, ::; else None."""
    try:
        host = urlsplit(url or "").hostname  # lower-cased, IPv6 brackets dropped
    except ValueError:
        return None
    if not host:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return host if any(a is not None and (a.is_loopback or a.is_unspecified) for a in (address, mapped)) else None


@dataclass(frozen=True)
class SlurmNode:
    """One node of one partition, as sinfo lists it."""

    name: str
    hostname: str
    address: str
    partition: str
    default: bool  # the cluster's default partition


def slurm_nodes() -> tuple[list[SlurmNode] | None, str]:
    """Every node of every partition, in one `sinfo` call; or None and why Slurm can't be asked."""
    if shutil.which(SINFO[0]) is None:
        return None, "sinfo not found"
    try:
        done = subprocess.run(SINFO, check=False, capture_output=True, text=True, timeout=SINFO_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"sinfo failed ({type(e).__name__})"
    if done.returncode != 0:
        return None, "sinfo failed: " + (done.stderr.strip().splitlines() or ["?"])[0]
    return parse_sinfo(done.stdout), ""


def parse_sinfo(listing: str) -> list[SlurmNode]:
    """The nodes of `sinfo -h -N -o '%N|%n|%o|%P'` (one line per node and partition)."""
    nodes = []
    for line in listing.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 4:
            name, hostname, address, partition = fields
            nodes.append(SlurmNode(name, hostname, address, partition.rstrip("*"), partition.endswith("*")))
    return nodes


def this_machine() -> tuple[set[str], set[str]]:
    """This machine's names (as given, fully qualified, short; lower case) and its addresses
    other than loopback ones (a node's loopback address is the node's own)."""
    names = {n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n}
    names |= {n.split(".")[0] for n in names}
    names = {n for n in names if not loopback_host(f"http://{n}")}  # getfqdn() may say localhost
    addresses = set()
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue
        addresses |= {str(info[4][0]) for info in infos}
    return names, {a for a in addresses if not loopback_host(f"http://[{a}]" if ":" in a else f"http://{a}")}


def this_host_name() -> str:
    """This machine's name as other machines know it: its fully qualified one when that is it."""
    short = socket.gethostname()
    fqdn = socket.getfqdn()
    if fqdn and not loopback_host(f"http://{fqdn}") and fqdn.split(".")[0] == short.split(".")[0]:
        return fqdn
    return short


def this_machine_url(url: str) -> str:
    """`url` with its host replaced by this machine's name (what other machines reach it at)."""
    parts = urlsplit(url)
    return parts._replace(netloc=this_host_name() + (f":{parts.port}" if parts.port else "")).geturl()


def is_this_machine(node: SlurmNode, names: set[str], addresses: set[str]) -> bool:
    return any(n.lower() in names for n in (node.name, node.hostname) if n) or node.address in addresses


def job_partitions(exp: ExperimentConfig, nodes: list[SlurmNode]) -> list[str]:
    """The partitions the run's jobs may run in: slurm.partition's (a list: any of them), or the
    cluster's default. per_role_jobs' role jobs go to the same ones (the controller submits them
    under SBATCH_PARTITION: placement.worker_sbatch_env)."""
    default = sorted({n.partition for n in nodes if n.default})
    named = [p.strip() for p in (exp.slurm.partition or "").split(",") if p.strip()]
    return named or default


def jobs_run_here(exp: ExperimentConfig, asked: tuple[list[SlurmNode] | None, str]) -> tuple[bool, str]:
    """Whether every node the run's jobs may run on is this machine (as slurm.same_host states,
    or Slurm's node list `asked` shows); when not, why not (or why it cannot be told)."""
    if exp.slurm.same_host is not None:
        return exp.slurm.same_host, f"{SAME_HOST_KEY}=false says the jobs run on other machines"
    nodes, why = asked
    if nodes is None:
        return False, f"Slurm cannot be asked where the jobs run ({why}): whether they run here cannot be told"
    partitions = job_partitions(exp, nodes)
    if not partitions:
        return False, "Slurm names no default partition and slurm.partition is not set: where the jobs run cannot be told"
    which = f"partition{'s' if len(partitions) > 1 else ''} {', '.join(partitions)}"
    used = [n for n in nodes if n.partition in partitions]
    if not used:
        return False, f"Slurm lists no node in {which}: where the jobs run cannot be told"
    names, addresses = this_machine()
    elsewhere = sorted({n.name for n in used if not is_this_machine(n, names, addresses)})
    if not elsewhere:
        return True, ""
    shown = ", ".join(elsewhere[:NODES_SHOWN]) + (f", ... ({len(elsewhere)} in all)" if len(elsewhere) > NODES_SHOWN else "")
    several = len(elsewhere) > 1
    return False, (f"the jobs may run on {which}, whose node{'s' if several else ''} {shown} "
                   f"{'are' if several else 'is'} not this machine ({this_host_name()})")


def check_reached_from_slurm(runs: Iterable[tuple[ExperimentConfig, Iterable[Any]]],
                             nodes: Callable[[], tuple[list[SlurmNode] | None, str]] | None = None) -> None:
    """No endpoint a Slurm job talks to (Endpoint-like: key, url, role) is at a loopback
    host, unless the job runs on this machine. `runs`: each run's config and the servers its
    episodes talk to (not the ones the job starts itself); `nodes`: Slurm's node list
    (slurm_nodes by default), asked at most once, and only for a loopback URL."""
    nodes = nodes or slurm_nodes
    asked: list = []
    for exp, endpoints in runs:
        if exp.slurm.same_host is True:
            continue
        for endpoint in endpoints:
            host = loopback_host(endpoint.url)
            if host is None:
                continue
            if exp.slurm.same_host is None and not asked:
                asked.append(nodes())
            here, why = jobs_run_here(exp, asked[0] if asked else (None, ""))
            if not here:
                raise loopback_refused(exp, endpoint, host, why)


def loopback_refused(exp: ExperimentConfig, endpoint: Any, host: str, why: str) -> ConfigError:
    key, url, role = endpoint.key, endpoint.url, endpoint.role or "server"
    this_url = this_machine_url(url)
    recorded = key == "econfig.user_llm_base_url" and recorded_url(exp.user_sim.record_file) == url
    source = (f" (recorded in {exp.user_sim.record_file} by a user simulator started here with cluster=local)"
              if recorded else "")
    if key == "econfig.user_llm_base_url":
        first = ("start the user simulator with `tau2train-user-sim cluster=slurm` (same cluster.fileroot as this "
                 "run; it records the node it runs on) and let its record fill econfig.user_llm_base_url")
    elif key.startswith("econfig.user_llm_by_domain."):
        first = f"start that user simulator with `tau2train-user-sim cluster=slurm` and set {key} to the URL it prints"
    elif key == "eval.agent_base_url":
        first = ("serve the agent where the compute nodes reach it, or evaluate a checkpoint with eval.checkpoint "
                 "(the job serves it on its own node)")
    else:
        first = f"serve the {role} where the compute nodes reach it"
    return ConfigError(
        key, url,
        f"names {host}, which is whichever machine connects: the Slurm job talks to the {role} from its compute "
        f"node, where {host} is the node itself, not this machine{source}; {why}",
        valid=f"a host name or address the compute nodes reach, e.g. {this_url} (this machine's name); "
        f"a loopback host only when the jobs run on this machine ({SAME_HOST_KEY})",
        fix=f"{first}; or set {key}={this_url} with the server listening beyond 127.0.0.1 (e.g. on 0.0.0.0); "
        f"or {SAME_HOST_KEY}=true if the jobs do run on this machine",
    )
