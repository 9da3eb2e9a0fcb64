"""Several hosts on one machine, and a Slurm over them: each host is a network
namespace with a veth into a private bridge (its own address, lo, a default route via the
bridge), plus its own UTS and mount namespace for its hostname and its /etc/hosts; one
slurmctld on the bridge's address (this machine, the submit host), one slurmd per host.

It runs beside the one-node Slurm of tests/setup_slurm.sh with its own slurm.conf (SLURM_CONF),
ports, state directories and munged (its own key and socket, AuthInfo=socket=...); Slurm's
clients reach it only through `Cluster.env()` / `Cluster.slurm(...)`, never by default.

    cluster = Cluster(Spec(n_hosts=3)).start()      # idempotent; returns once every host is idle
    cluster.slurm("sbatch", "-w", "t2c2", "--wrap", "hostname")   # a Slurm client, this cluster's conf
    cluster.run("t2c1", ["hostname"])                # a command as host t2c1 (its net, name, /etc/hosts)
    cluster.take_down("t2c3")                        # host lost: every process of it killed, link down
    cluster.bring_up("t2c3")                         # back: link up, slurmd again
    cluster.stop()                                   # every daemon (by PID), namespace, link and file

In the tests, the session fixture `multihost` (tests/conftest.py) hands out the default cluster
(Cluster.acquire/release: the one tests/setup_cluster.sh started, else one for the session). A
service of one's own on the hosts (a Ray head and workers, say) is `cluster.popen(host, argv)`
per host, reached from the others by host name and from this machine at `spec.address(host)`;
this machine is `spec.head_address` (the bridge, 10.77.0.1) from the hosts. A second cluster
beside it needs its own name, subnet and ports (Spec).

Why not `ip netns exec`: it remounts /sys, and slurmd 22.05 then fails on /sys/fs/cgroup; a host's
commands run as `nsenter --net=/run/netns/<h> unshare --uts --mount sh -c 'mount --bind <hosts>
/etc/hosts && ... && exec ...'` instead (`Cluster.argv`). Each host needs the cluster's
/etc/hosts, and a resolv.conf that fails at once: name lookups cannot leave the namespaces.

Standard library only, so that root's plain python3 runs it: tests/setup_cluster.sh is
`python3 tests/helpers/hosts.py start|stop|status|run|down|up`. Needs root (namespaces, links).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")
START_DEADLINE_S = 60
STOP_DEADLINE_S = 15
LOCK_DEADLINE_S = 2 * START_DEADLINE_S + 30
COMMAND_TIMEOUT_S = 30  # every ip/Slurm client call
# a second partition over the same hosts where every job takes its host whole (a run's
# controller and its role jobs each on a host of their own, as GPU jobs take whole nodes)
WHOLE_HOSTS = "whole"


def read_state(path: Path) -> dict:
    """A state file (what a start left for a later stop, even a crashed run's), {} when none."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict) -> None:
    """`state` into `path` whole (a reader never sees half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


@dataclass(frozen=True)
class Spec:
    """One cluster's names, addresses, ports and timing. Two clusters with different `name`,
    `subnet` and ports run side by side (the teardown test starts a second one)."""

    name: str = "t2c"  # hosts <name>1..<name>N (hostnames, namespaces, Slurm nodes); bridge <name>-br
    n_hosts: int = 3
    subnet: str = "10.77.0"  # a /24: the bridge (submit host, slurmctld) .1, host i .10+i
    ctld_port: int = 7817
    slurmd_port: int = 7818
    slurmd_timeout_s: int = 20  # a lost host is DOWN about this + 10 s later
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)  # per host (all share this machine's)
    # per host, MB: this machine's memory less 1 GiB, as tests/setup_slurm.sh declares its node
    mem_mb: int = field(default_factory=lambda: max(512, _mem_total_mb() - 1024))
    # the default partition's OverSubscribe: FORCE:8 packs jobs onto a host as
    # tests/setup_slurm.sh does (partition WHOLE_HOSTS gives each job a host of its own)
    oversubscribe: str = "FORCE:8"

    def __post_init__(self):
        if not (self.name.isalnum() and self.name[0].isalpha() and len(self.name) <= 8):
            raise ValueError(f"cluster name {self.name!r}: letters and digits, at most 8, a letter first")
        if not 1 <= self.n_hosts <= 200:
            raise ValueError(f"n_hosts={self.n_hosts}: 1 to 200")

    @property
    def hosts(self) -> list[str]:
        return [f"{self.name}{i}" for i in range(1, self.n_hosts + 1)]

    @property
    def bridge(self) -> str:
        return f"{self.name}-br"

    @property
    def head_address(self) -> str:
        """The bridge's address: this machine seen from the hosts (slurmctld, the submit host)."""
        return f"{self.subnet}.1"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{10 + self.hosts.index(host) + 1}"

    @property
    def root(self) -> Path:
        """Every file the cluster writes (config, state, spools, logs, munge), removed by stop."""
        return Path(f"/run/tau2train-{self.name}")

    @property
    def lock_path(self) -> Path:
        return Path(f"/run/tau2train-{self.name}.lock")


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


def _sh(*argv: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, env=env,
                            check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot; None once it is gone or a zombie): with
    its PID, what identifies it, so that a PID reused by another process is never signalled."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def require_root() -> None:
    """Skip the calling test unless it runs as root: a host's commands enter its namespaces
    (nsenter), which only root may. `make test` as a user starts the cluster with sudo, but its
    tests need pytest run as root (as CI does)."""
    if os.geteuid() != 0:
        import pytest

        pytest.skip("the several-host test cluster needs root (network namespaces): run the tests as root")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def _poll(predicate, what: str, deadline_s: float, explain=lambda: ""):
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s:g} s waiting for {what}{explain()}")
        time.sleep(0.1)


class Cluster:
    """The hosts and their Slurm (see the module's docstring). Its state (the daemons' PIDs and
    start times, who uses it) is <root>/state.json, so that another process (the shell script, a
    second pytest worker) finds, uses and stops the same cluster."""

    def __init__(self, spec: Spec | None = None):
        self.spec = spec or Spec()
        self._children: dict[int, subprocess.Popen] = {}  # daemons this process started: reaped on stop
        self.started = False  # whether start() started it (False: it was up already)

    # ---- paths and environment
    @property
    def root(self) -> Path:
        return self.spec.root

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts"

    @property
    def resolv_file(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def jobcomp(self) -> Path:
        """Slurm's record of every ended job (jobcomp/filetxt): JobId, NodeList, JobState, ..."""
        return self.root / "jobcomp.txt"

    def jobcomp_records(self) -> dict[str, dict[str, str]]:
        """Slurm's record of every ended job, by job id: {'JobState': ..., 'NodeList': ...}."""
        if not self.jobcomp.exists():
            return {}
        records = {}
        for line in self.jobcomp.read_text().splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            records[fields["JobId"]] = fields
        return records

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def env(self, base: dict | None = None) -> dict:
        """An environment whose Slurm clients (sbatch, srun, squeue, ...) talk to this cluster;
        a job submitted with it passes SLURM_CONF on to its own sbatch/srun (AReaL's scheduler)."""
        return {**(os.environ if base is None else base), "SLURM_CONF": str(self.conf)}

    # ---- state
    def state(self) -> dict:
        return read_state(self.state_path)

    def _save(self, state: dict) -> None:
        write_state(self.state_path, state)

    def daemons(self) -> dict[str, tuple[int, int]]:
        """{'munged': (pid, start time), 'slurmctld': ..., 'slurmscriptd': ..., 'slurmd@t2c1': ...}."""
        return {name: tuple(v) for name, v in self.state().get("daemons", {}).items()}

    def is_up(self) -> bool:
        """Every daemon alive and every host idle or busy in Slurm's view, but for the hosts
        take_down took down (a test of host loss is not undone by another's start)."""
        state = self.state()
        daemons, down = self.daemons(), set(state.get("down", []))
        if state.get("spec") and Spec(**state["spec"]) != self.spec:
            return False
        needed = {"munged", "slurmctld", *(f"slurmd@{h}" for h in self.spec.hosts if h not in down)}
        if not needed <= daemons.keys() or not all(alive(*daemons[n]) for n in needed):
            return False
        return set(self.node_states()) == set(self.spec.hosts) and self.all_up(
            [h for h in self.spec.hosts if h not in down])

    @contextlib.contextmanager
    def locked(self):
        """An exclusive lock on this cluster's start, stop and users (a file lock: processes)."""
        while True:
            fd = os.open(self.spec.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # held by another start or stop: a minute at most (START_DEADLINE_S)
                _poll(lambda fd=fd: _try_lock(fd), f"the lock {self.spec.lock_path}", LOCK_DEADLINE_S)
                try:
                    same = os.stat(self.spec.lock_path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # not a lock file a finished stop has just removed
                    yield
                    return
            finally:
                os.close(fd)

    # ---- the hosts
    def argv(self, host: str, argv: list[str]) -> list[str]:
        """`argv` as host `host`: its network namespace, a UTS namespace named `host`, a mount
        namespace where /etc/hosts is the cluster's. One process (nsenter and unshare exec; no
        fork), so the PID of the Popen is the command's."""
        if host not in self.spec.hosts:
            raise ValueError(f"no host {host!r} (hosts: {', '.join(self.spec.hosts)})")
        script = (f"mount --bind {self.hosts_file} /etc/hosts"
                  f" && mount --bind {self.resolv_file} /etc/resolv.conf"
                  f' && hostname {host} && exec "$@"')
        return ["nsenter", f"--net={NETNS_DIR / host}", "unshare", "--uts", "--mount",
                "sh", "-c", script, "sh", *argv]

    def run(self, host: str, argv: list[str], timeout: float = COMMAND_TIMEOUT_S,
            **kwargs) -> subprocess.CompletedProcess:
        """Run `argv` as host `host` (Slurm clients there use this cluster) and wait for it."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(host, argv), env=self.env(kwargs.pop("env", None)),
                              timeout=timeout, check=False, **kwargs)

    def popen(self, host: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start `argv` as host `host` without waiting (a server, a worker)."""
        return subprocess.Popen(self.argv(host, argv), env=self.env(kwargs.pop("env", None)), **kwargs)

    def host_pids(self, host: str) -> list[int]:
        """Every process of the host (its network namespace): its slurmd, jobs, commands."""
        if not (NETNS_DIR / host).exists():
            return []
        out = _sh("ip", "netns", "pids", host, check=False).stdout
        return [int(p) for p in out.split()]

    def slurm(self, *argv: str, check: bool = False,
              timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        """A Slurm client command (sbatch, squeue, scontrol, ...) against this cluster, from this machine."""
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def node_states(self) -> dict[str, str]:
        """{host: Slurm state (idle, down*, ...)}; {} while slurmctld does not answer."""
        try:
            out = self.slurm("sinfo", "-h", "-N", "-o", "%N %t %T", timeout=10).stdout
        except subprocess.TimeoutExpired:
            return {}
        return {line.split()[0]: line.split()[2].lower() for line in out.splitlines() if line.strip()}

    def all_up(self, hosts: list[str] | None = None) -> bool:
        """Every host (of `hosts`) schedulable in Slurm: idle, or running jobs."""
        nodes = self.node_states()
        return all(nodes.get(h, "down").rstrip("*~#!%$@^-") in ("idle", "mixed", "allocated", "completing")
                   for h in (self.spec.hosts if hosts is None else hosts))

    def all_idle(self) -> bool:
        nodes = self.node_states()
        return set(nodes) == set(self.spec.hosts) and all(s.startswith("idle") for s in nodes.values())

    # ---- start
    def start(self, owner: str = "script") -> Cluster:
        """Start the cluster unless it is up (then nothing changes); a half-started or half-stopped
        one is stopped first. Returns once every host is idle in Slurm (bounded wait)."""
        with self.locked():
            self.started = self._start(owner)
        return self

    def _start(self, owner: str) -> bool:
        """Whether it started the cluster (False: it was up)."""
        if os.geteuid() != 0:
            raise PermissionError("the test cluster needs root (network namespaces, links, munged)")
        for tool in ("slurmctld", "slurmd", "sbatch", "munged", "ip", "nsenter", "unshare"):
            if not shutil.which(tool):
                raise FileNotFoundError(
                    f"{tool} is missing: `sudo bash tests/setup_slurm.sh` installs Slurm and munge")
        if self.state_path.exists() and self.is_up():
            return False
        self._stop()  # whatever a crashed start or stop left
        began = time.monotonic()
        spec = self.spec
        state = {"spec": asdict(spec), "owner": owner, "users": [], "daemons": {},
                 "made_netns_dir": not NETNS_DIR.exists(), "started_at": time.time()}
        self.root.mkdir(mode=0o755)
        for sub in ("log", "ctld", "spool", "run"):
            (self.root / sub).mkdir()
        self._save(state)  # from here on, stop knows what to undo
        self._write_files()
        self._make_network()
        state["daemons"]["munged"] = self._spawn_munged()
        self._save(state)
        _poll(self.munge_socket.exists, "munged's socket", 10, self._logs)
        state["daemons"]["slurmctld"] = self._spawn(
            [shutil.which("slurmctld"), "-D", "-f", str(self.conf)], self.root / "log" / "slurmctld.out")
        self._save(state)
        for host in spec.hosts:
            state["daemons"][f"slurmd@{host}"] = self._spawn_slurmd(host)
            self._save(state)
        _poll(lambda: self.all_idle(), "every host idle in Slurm", START_DEADLINE_S,
              lambda: f" ({self.node_states()}){self._logs()}")
        # slurmctld's helper process, slurmscriptd (its child): recorded so that stop checks it too
        ctld = state["daemons"]["slurmctld"][0]
        for pid, started in self._children_of(ctld):
            state["daemons"]["slurmscriptd"] = (pid, started)
        state["startup_s"] = round(time.monotonic() - began, 2)
        self._save(state)
        return True

    def _write_files(self) -> None:
        spec, root = self.spec, self.root
        head = socket.gethostname().split(".")[0]
        self.hosts_file.write_text("\n".join([
            "127.0.0.1 localhost",
            f"{spec.head_address} {head} {spec.name}-head",
            *(f"{spec.address(h)} {h}" for h in spec.hosts), ""]))
        # no DNS server is reachable from the hosts: a name /etc/hosts lacks (an IPv6 lookup of a
        # host's name, as `getent hosts` makes first) is refused at once, not after 10 s of timeouts
        self.resolv_file.write_text("# tests/helpers/hosts.py: names come from /etc/hosts\n"
                                    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        nodes = "\n".join(
            f"NodeName={h} NodeAddr={spec.address(h)} CPUs={spec.cpus} RealMemory={spec.mem_mb} State=UNKNOWN"
            for h in spec.hosts)
        self.conf.write_text(f"""\
# tests/helpers/hosts.py: {spec.n_hosts} hosts on this machine (network + UTS namespaces on {spec.bridge})
ClusterName=tau2train-{spec.name}
SlurmctldHost={head}({spec.head_address})
SlurmctldPort={spec.ctld_port}
SlurmdPort={spec.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout={spec.slurmd_timeout_s}
MaxArraySize=10001
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
MailProg=/bin/true
MpiDefault=none
{nodes}
PartitionName=hosts Nodes={','.join(spec.hosts)} Default=YES MaxTime=INFINITE State=UP \
OverSubscribe={spec.oversubscribe}
PartitionName={WHOLE_HOSTS} Nodes={','.join(spec.hosts)} Default=NO MaxTime=INFINITE State=UP \
OverSubscribe=EXCLUSIVE
""")

    def _make_network(self) -> None:
        spec = self.spec
        _sh("ip", "link", "add", spec.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{spec.head_address}/24", "dev", spec.bridge)
        _sh("ip", "link", "set", spec.bridge, "up")
        for host in spec.hosts:
            _sh("ip", "netns", "add", host)
            # the host's end is its eth0; this machine's end is named after the host
            _sh("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", host)
            _sh("ip", "link", "set", host, "master", spec.bridge, "up")
            _sh("ip", "-n", host, "addr", "add", f"{spec.address(host)}/24", "dev", "eth0")
            _sh("ip", "-n", host, "link", "set", "eth0", "up")
            _sh("ip", "-n", host, "link", "set", "lo", "up")
            _sh("ip", "-n", host, "route", "add", "default", "via", spec.head_address)

    def _spawn(self, argv: list[str], log: Path, **kwargs) -> tuple[int, int]:
        # the daemons' own environment: not the caller's (a pytest worker's)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
               "SLURM_CONF": str(self.conf)}
        # in /, as daemons run: slurmd's working directory is every job step's (slurmstepd), and
        # the directory the cluster was started from may be gone by then (a removed checkout)
        kwargs.setdefault("cwd", "/")
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, **kwargs)
        self._children[proc.pid] = proc
        started = _poll(lambda: start_time(proc.pid) if proc.poll() is None else -1,
                        f"{argv[0]} to start", 10)
        if started == -1:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode} at once{self._logs()}")
        return proc.pid, started

    def _spawn_munged(self) -> tuple[int, int]:
        """A munged of its own: its key, socket, PID, seed and log files under <root>/munge."""
        import pwd

        munge = pwd.getpwnam("munge")
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o755)
        key = mdir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        for path, mode in ((mdir, 0o755), (key, 0o400)):
            os.chown(path, munge.pw_uid, munge.pw_gid)
            os.chmod(path, mode)
        return self._spawn(
            [shutil.which("munged"), "-F", f"--socket={self.munge_socket}", f"--key-file={key}",
             f"--pid-file={mdir / 'munged.pid'}", f"--seed-file={mdir / 'munged.seed'}",
             f"--log-file={mdir / 'munged.log'}"],
            self.root / "log" / "munged.out", user=munge.pw_uid, group=munge.pw_gid)

    def _spawn_slurmd(self, host: str) -> tuple[int, int]:
        return self._spawn(self.argv(host, [shutil.which("slurmd"), "-D", "-f", str(self.conf), "-N", host]),
                           self.root / "log" / f"slurmd-{host}.out")

    @staticmethod
    def _children_of(pid: int) -> list[tuple[int, int]]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == pid and stat[0] not in ("Z", "X"):
                    found.append((int(entry.name), int(stat[19])))
        return found

    def _logs(self) -> str:
        tails = []
        for log in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            with contextlib.suppress(OSError):
                tails.append(f"\n--- {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-8:]))
        return "".join(tails)

    # ---- a host lost, and back
    def take_down(self, host: str) -> list[int]:
        """Host `host` lost: every process of it (slurmd, slurmstepd, its jobs; `ip netns pids`)
        killed at once, and its link down. Slurm marks it DOWN about slurmd_timeout_s + 10 s
        later (killing slurmd alone would leave its jobs running). Returns the PIDs killed."""
        with self.locked():
            pids = self._kill_host(host)
            _sh("ip", "link", "set", host, "down")
            state = self.state()
            state.setdefault("down", [])
            state["down"] = sorted({*state["down"], host})
            self._save(state)
        return pids

    def bring_up(self, host: str) -> None:
        """Host `host` back after take_down: its link up and a fresh slurmd (ReturnToService=2
        makes it schedulable once it registers). Returns once Slurm sees it idle."""
        with self.locked():
            self._bring_up(host)
        _poll(lambda: self.node_states().get(host, "").startswith("idle"), f"{host} idle", START_DEADLINE_S,
              lambda: f" ({self.node_states()})")

    def _bring_up(self, host: str) -> None:
        state = self.state()
        _sh("ip", "link", "set", host, "up")
        if not alive(*state["daemons"].get(f"slurmd@{host}", (0, 0))):
            state["daemons"][f"slurmd@{host}"] = self._spawn_slurmd(host)
        state["down"] = [h for h in state.get("down", []) if h != host]
        self._save(state)

    def _kill_host(self, host: str) -> list[int]:
        killed = []
        for pid in self.host_pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        self._reap()
        _poll(lambda: not self.host_pids(host), f"every process of {host} to end", STOP_DEADLINE_S)
        return killed

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    # ---- users (pytest workers) and stop
    def acquire(self, user_pid: int | None = None) -> Cluster:
        """A user (a pytest worker) of the cluster: starts it unless up (owner 'pytest')."""
        with self.locked():
            self._start(owner="pytest")
            users = [u for u in self.state()["users"] if alive(*u)]
            if not users:  # the first user: a host an earlier session took down (and crashed) is back
                for host in self.state().get("down", []):
                    self._bring_up(host)
            state = self.state()
            pid = user_pid or os.getpid()
            state["users"] = [*users, (pid, start_time(pid))]
            self._save(state)
        if not users:
            _poll(self.all_up, "every host up in Slurm", START_DEADLINE_S, lambda: f" ({self.node_states()})")
        return self

    def release(self, user_pid: int | None = None) -> bool:
        """The user is done: the last user of a cluster pytest started stops it (one started by
        tests/setup_cluster.sh, e.g. by make test, stays up). Returns whether it stopped."""
        with self.locked():
            state = self.state()
            pid = user_pid or os.getpid()
            state["users"] = [u for u in state.get("users", []) if alive(*u) and u[0] != pid]
            stopping = state.get("owner") == "pytest" and not state["users"]
            if stopping:
                self._stop()
                self._unlink_lock()
            elif self.state_path.exists():
                self._save(state)
        return stopping

    def stop(self) -> None:
        """Every daemon (by PID), every process of the hosts, namespace, link and file the cluster
        made, whatever state it is in; nothing else. Bounded waits."""
        with self.locked():
            self._stop()
            self._unlink_lock()

    def _unlink_lock(self) -> None:
        # while held: a process waiting on it then finds it gone and locks a new one (locked())
        with contextlib.suppress(FileNotFoundError):
            self.spec.lock_path.unlink()

    def _stop(self) -> None:
        state = self.state()
        # the hosts it was started with (state.json) and the ones asked for now
        was = Spec(**state["spec"]) if state.get("spec") else self.spec
        hosts = list(dict.fromkeys([*was.hosts, *self.spec.hosts]))
        daemons = [tuple(d) for d in state.get("daemons", {}).values()]
        for pid, started in daemons:  # a clean shutdown first (slurmctld saves its state)
            if alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            _poll(lambda: (self._reap(), not any(alive(*d) for d in daemons))[1], "the daemons to stop", 10)
        for pid, started in daemons:
            if alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for host in hosts:  # jobs, steps, commands run as a host
            self._kill_host(host)
        _poll(lambda: (self._reap(), not any(alive(*d) for d in daemons))[1], "the daemons to end",
              STOP_DEADLINE_S)
        for host in hosts:
            if (NETNS_DIR / host).exists():
                _sh("ip", "netns", "del", host)
        for link in [*hosts, self.spec.bridge]:  # a host's veth goes with its namespace; left over ones too
            if _sh("ip", "link", "show", link, check=False).returncode == 0:
                _sh("ip", "link", "del", link, check=False)
        if state.get("made_netns_dir") and NETNS_DIR.exists() and not any(NETNS_DIR.iterdir()):
            _sh("umount", str(NETNS_DIR), check=False)  # `ip netns add` made it a mount point
            with contextlib.suppress(OSError):
                NETNS_DIR.rmdir()
        if self.root.exists():
            shutil.rmtree(self.root)

    # ---- what it holds (the teardown test and the status command)
    def footprint(self) -> dict:
        """The daemons (name: (pid, start time)), namespaces, links and files of the cluster."""
        links = _sh("ip", "-o", "link", "show", check=False).stdout
        link_names = {line.split(": ")[1].split("@")[0] for line in links.splitlines() if ": " in line}
        netns = {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.exists() else set()
        return {
            "daemons": self.daemons(),
            "namespaces": sorted(netns & set(self.spec.hosts)),
            "links": sorted(link_names & {*self.spec.hosts, self.spec.bridge}),
            "files": [str(p) for p in (self.root, self.spec.lock_path) if p.exists()],
        }

    def rss_kb(self) -> dict[str, int]:
        """Resident memory of each live daemon (kB, /proc/<pid>/status VmRSS)."""
        out = {}
        for name, (pid, started) in self.daemons().items():
            if alive(pid, started):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1])
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/setup_cluster.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=Spec.name)
    parser.add_argument("--hosts", type=int, default=Spec.n_hosts)
    parser.add_argument("--subnet", default=Spec.subnet)
    parser.add_argument("--ctld-port", type=int, default=Spec.ctld_port)
    parser.add_argument("--slurmd-port", type=int, default=Spec.slurmd_port)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start", help="start the hosts and their Slurm (idempotent)")
    commands.add_parser("stop", help="stop everything the cluster made (idempotent)")
    commands.add_parser("status", help="hosts, addresses, daemons and their memory")
    commands.add_parser("env", help="print `export SLURM_CONF=...` for this cluster's Slurm clients")
    run = commands.add_parser("run", help="run a command as a host: run HOST CMD...")
    run.add_argument("host")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    for name, text in (("down", "take a host down (every process of it killed, link down)"),
                       ("up", "bring a host back (link up, slurmd again)")):
        commands.add_parser(name, help=text).add_argument("host")
    args = parser.parse_args(argv)
    spec = Spec(name=args.name, n_hosts=args.hosts, subnet=args.subnet,
                ctld_port=args.ctld_port, slurmd_port=args.slurmd_port)
    cluster = Cluster(spec)
    if args.command == "start":
        cluster.start()
        hosts = ", ".join(f"{h} {spec.address(h)}" for h in spec.hosts)
        print(f"cluster {spec.name}: {spec.n_hosts} hosts up ({hosts}); "
              + (f"started in {cluster.state()['startup_s']} s" if cluster.started else "already up, kept"))
        print(f"  export SLURM_CONF={cluster.conf}")
    elif args.command == "stop":
        cluster.stop()
        print(f"cluster {spec.name}: stopped")
    elif args.command == "env":
        print(f"export SLURM_CONF={cluster.conf}")
    elif args.command == "status":
        if not cluster.state_path.exists():
            print(f"cluster {spec.name}: not started")
            return 1
        rss = cluster.rss_kb()
        up = cluster.is_up()
        print(f"cluster {spec.name}: {'up' if up else 'NOT up'}; SLURM_CONF={cluster.conf}")
        down = cluster.state().get("down", [])
        for host, state in cluster.node_states().items():
            taken = " (taken down)" if host in down else ""
            print(f"  {host:10s} {spec.address(host):14s} {state}{taken}")
        for name, (pid, _) in cluster.daemons().items():
            print(f"  {name:16s} pid {pid:<8d} rss {rss.get(name, 0) / 1024:6.1f} MB" if name in rss
                  else f"  {name:16s} pid {pid:<8d} (gone)")
        print(f"  daemons' RSS in all: {sum(rss.values()) / 1024:.1f} MB")
        return 0 if up else 1
    elif args.command == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        return subprocess.run(cluster.argv(args.host, cmd), env=cluster.env(), check=False).returncode
    elif args.command == "down":
        print(f"{args.host}: killed {cluster.take_down(args.host)}")
    elif args.command == "up":
        cluster.bring_up(args.host)
        print(f"{args.host}: up")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... status | head`: no traceback
    sys.exit(main())
