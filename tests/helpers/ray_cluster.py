"""A Ray cluster over the tests' simulated hosts (tests/helpers/hosts.py), as users have one on
real machines: `ray start --head` on the first host, `ray start --address` on each other, beside
the hosts' slurmd's. `cluster=ray` (AReaL's RayScheduler on an existing cluster) runs on it.

    ray = RayCluster(hosts).start()     # stale leftovers of the same name stopped first; bounded
    ray.address, ray.env()              # "10.77.0.11:6380"; a driver's environment (RAY_ADDRESS, ...)
    hosts.run(ray.head, ["python", "driver.py"], env=ray.env())   # a driver runs on a host
    ray.alive_nodes()                   # {"t2c1": True, "t2c2": True, "t2c3": True}, from the GCS
    ray.lose("t2c3"); ray.restore("t2c3")   # a host lost (the GCS marks its node dead), and back
    ray.stop()                          # every Ray process of it, by PID; verified none is left

The head has no CPUs (--num-cpus 0: no AReaL worker lands there); each worker node has this
machine's CPU count, so a role asking that many CPUs takes a node whole (how tests spread roles
over hosts). The GCS is asked from a short subprocess at the head's address (this machine reaches
it over the bridge), never by `ray.init` in the calling process: that would tie it to the cluster.

Never `ray stop`: it kills every Ray process of the machine, other sessions' too. Each node's
`ray start --block` leads a process group of its own, and every process of the cluster carries
MARKER in its environment (Ray's workers inherit the raylet's): stop signals those, by PID
(SIGTERM to each `ray start`, which stops its node in order; then SIGKILL to whatever is left).

Standard library (and ray, in the query subprocess) only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from helpers.hosts import Cluster, _poll, alive, read_state, start_time, write_state

RAY_PORT = 6380  # the GCS's port on the head host: not Ray's default 6379, nor Slurm's 7817/7818
GCS_UP_DEADLINE_S = 60  # the head's GCS accepting connections (a few s on 2 cores)
START_DEADLINE_S = 120  # then every node alive in the GCS (measured: 17-21 s in all on 2 cores)
DEAD_DEADLINE_S = 90  # a lost node marked dead by the GCS (measured: ~30 s; Ray's health checks)
STOP_GRACE_S = 10  # SIGTERM, then SIGKILL (a node's `ray start` stops its processes in ~2 s)
STOP_DEADLINE_S = 15  # after SIGKILL, every process gone
QUERY_TIMEOUT_S = 20  # one GCS query subprocess (~0.5 s, ray's import); a wrong address hangs
HEAD_MEMORY_MB = 1024  # the head's `memory` resource: it runs no work. Unset, each node claims all
OBJECT_STORE_MB = 1024  # per node: Ray's default (30% of memory) would be that thrice over in /dev/shm
MARKER = "TAU2TRAIN_RAY_CLUSTER"  # in every Ray process's environment: the cluster's root directory
# what every Ray process (and so every AReaL worker) runs with: no network, no compiler, no
# memory monitor killing workers on a machine the three nodes share
RAY_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "TORCHDYNAMO_DISABLE": "1", "RAY_memory_monitor_refresh_ms": "0"}
TESTS_DIR = Path(__file__).resolve().parent.parent  # on Ray workers' PYTHONPATH: helpers import there
# the GCS's nodes as [[node ip, alive], ...]: GcsClient speaks to the GCS alone (no driver, no raylet)
QUERY = """\
import json, sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo
nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=float(sys.argv[2])).values()
print(json.dumps([[n.node_manager_address, n.state == GcsNodeInfo.ALIVE] for n in nodes]))
"""


class RayCluster:
    """Ray's head on hosts[0] and a worker node on each other host of `hosts` (see the module's
    docstring). Its state (each node's `ray start` PID and start time, its owner) is
    <root>/state.json, so that a later start finds and stops what a crashed run left."""

    def __init__(self, hosts: Cluster, port: int = RAY_PORT, worker_memory_mb: int | None = None,
                 env: dict[str, str] | None = None):
        self.hosts, self.spec, self.port = hosts, hosts.spec, port
        # each worker host's memory as Slurm declares it (this machine's less 1 GiB)
        self.worker_memory_mb = worker_memory_mb or self.spec.mem_mb
        self.extra_env = dict(env or {})  # the caller's additions to the Ray processes' environment
        self.root = Path(f"/tmp/tau2train-ray-{self.spec.name}")  # temp dirs, logs, state
        self._procs: dict[str, subprocess.Popen] = {}  # `ray start` per host, started here: reaped
        self.startup_s: float | None = None  # start() until every node alive
        # the RSS of every Ray process right after start (1.4-1.8 GB: the workers' agents may
        # still be starting; ~2.1 GB once settled: each `ray start --block` alone holds 225 MB)
        self.memory_mb: float | None = None
        self._query_error = ""  # why the last GCS query failed

    # ---- names, paths, environment
    @property
    def head(self) -> str:
        return self.spec.hosts[0]

    @property
    def workers(self) -> list[str]:
        return self.spec.hosts[1:]

    @property
    def address(self) -> str:
        return f"{self.spec.address(self.head)}:{self.port}"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def log(self, host: str) -> Path:
        return self.root / "log" / f"ray-{host}.log"

    def temp_dir(self, host: str) -> Path:
        """Each node's own --temp-dir, as each machine has its own /tmp/ray (short: Ray's socket
        paths must stay under 108 characters)."""
        return self.root / host

    def env(self, base: dict | None = None) -> dict[str, str]:
        """A driver's environment: RAY_ADDRESS and the Ray processes' own (venv, PYTHONPATH, the
        offline flags). Run the driver as a host (`hosts.run(ray.head, ..., env=ray.env())`): Ray
        attaches a driver to a raylet of its own node, and this machine has none."""
        return {**self._base_env(base), "RAY_ADDRESS": self.address}

    def _base_env(self, base: dict | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.pop("RAY_ADDRESS", None)  # `ray start --head` must not join another cluster
        env.pop(MARKER, None)
        venv_bin = Path(sys.executable).parent  # not resolved: a venv's python is a link
        paths = [str(TESTS_DIR), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        env.update(RAY_ENV, PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', os.defpath)}",
                   VIRTUAL_ENV=str(venv_bin.parent), PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
        env.update(self.extra_env)
        return env

    # ---- state
    def _state(self) -> dict:
        return read_state(self.state_path)

    def _save(self, state: dict) -> None:
        write_state(self.state_path, state)

    # ---- start
    def start(self) -> RayCluster:
        """Head, then workers; returns once the GCS has every node alive (bounded). A leftover of
        the same name (a crashed run's) is stopped first; a failed start stops what it started."""
        self._stop_stale()
        began = time.monotonic()
        try:
            self._start_nodes()
        except BaseException as failure:
            message = f"{failure}{self._logs()}"
            try:
                self.stop()
            except TimeoutError as left:
                message += f"\n(and its stop: {left})"
            if not isinstance(failure, Exception):  # an interrupt stays one
                raise
            raise RuntimeError(f"Ray cluster on {self.spec.name}: {message}") from failure
        self.startup_s = round(time.monotonic() - began, 2)
        self.memory_mb = round(sum(_rss_kb(pid) for pid, _ in self._ray_pids()) / 1024, 1)
        state = self._state()
        state.update(startup_s=self.startup_s, memory_mb=self.memory_mb)
        self._save(state)
        return self

    def _start_nodes(self) -> None:
        down = set(self.hosts.state().get("down", []))
        if down:
            raise RuntimeError(f"host(s) {sorted(down)} are down (hosts.take_down): bring them up first")
        (self.root / "log").mkdir(parents=True)
        me = os.getpid()
        self._save({"owner": (me, start_time(me)), "address": self.address, "nodes": {}})
        self._start_node(self.head)
        _poll(self._gcs_listens, f"the GCS at {self.address}", GCS_UP_DEADLINE_S, self._exited)
        for host in self.workers:
            self._start_node(host)
        self._wait_alive(self.spec.hosts, START_DEADLINE_S)

    def _start_node(self, host: str) -> None:
        """`ray start --block` as `host`, leading a process group of its own (stop signals it)."""
        ray = Path(sys.executable).parent / "ray"
        if not ray.exists():
            raise FileNotFoundError(f"{ray} is missing: the venv of {sys.executable} has no Ray")
        if host == self.head:
            role = ["--head", "--port", str(self.port), "--include-dashboard=false", "--num-cpus", "0",
                    "--memory", str(HEAD_MEMORY_MB * 2**20)]
        else:
            role = ["--address", self.address, "--num-cpus", str(os.cpu_count() or 1),
                    "--memory", str(self.worker_memory_mb * 2**20)]
        argv = [str(ray), "start", *role, "--node-ip-address", self.spec.address(host),
                "--temp-dir", str(self.temp_dir(host)), "--object-store-memory",
                str(OBJECT_STORE_MB * 2**20), "--disable-usage-stats", "--block"]
        env = {**self._base_env(), MARKER: str(self.root)}
        with open(self.log(host), "ab") as out:
            proc = self.hosts.popen(host, argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        self._procs[host] = proc
        state = self._state()
        state["nodes"][host] = (proc.pid, start_time(proc.pid))
        self._save(state)

    def _gcs_listens(self) -> bool:
        """The head's GCS port accepts connections (cheap; workers started before fail to join)."""
        with contextlib.suppress(OSError), socket.create_connection(
                (self.spec.address(self.head), self.port), timeout=1):
            return True
        return False

    def _wait_alive(self, hosts: list[str], deadline_s: float) -> None:
        _poll(lambda: all(self._nodes_or_empty().get(h) for h in hosts),
              f"Ray nodes alive on {', '.join(hosts)}", deadline_s,
              lambda: f" (GCS: {self._nodes_or_empty()}){self._exited()}")

    def _exited(self) -> str:
        """Which `ray start` exited (why a wait failed), for a timeout's message."""
        gone = {h: p.poll() for h, p in self._procs.items() if p.poll() is not None}
        return f"; exited: {gone}" if gone else ""

    def _logs(self) -> str:
        tails = []
        for host in self.spec.hosts:
            with contextlib.suppress(OSError):
                lines = self.log(host).read_text(errors="replace").splitlines()[-12:]
                tails.append(f"\n--- {self.log(host)}:\n" + "\n".join(lines))
        return "".join(tails)

    # ---- the GCS's view
    def alive_nodes(self) -> dict[str, bool]:
        """{host: whether the GCS has a live node at its address}; a host lost and restored has a
        dead node and a live one there (True). Raises when the GCS does not answer."""
        nodes = self._gcs_nodes()
        if nodes is None:
            raise RuntimeError(f"the GCS at {self.address} did not answer: {self._query_error}")
        return nodes

    def _nodes_or_empty(self) -> dict[str, bool]:
        return self._gcs_nodes() or {}

    def _gcs_nodes(self) -> dict[str, bool] | None:
        """One bounded query subprocess (GcsClient) from this machine; None if it failed."""
        self._query_error = ""
        try:
            result = subprocess.run([sys.executable, "-c", QUERY, self.address, str(QUERY_TIMEOUT_S / 2)],
                                    capture_output=True, text=True, timeout=QUERY_TIMEOUT_S,
                                    env=self._base_env(), check=False)
        except subprocess.TimeoutExpired:
            self._query_error = f"no answer in {QUERY_TIMEOUT_S} s"
            return None
        if result.returncode != 0:
            self._query_error = (result.stderr.strip().splitlines() or ["?"])[-1]
            return None
        by_ip = {self.spec.address(h): h for h in self.spec.hosts}
        nodes = dict.fromkeys(self.spec.hosts, False)
        for ip, up in json.loads(result.stdout.strip().splitlines()[-1]):
            if ip in by_ip:
                nodes[by_ip[ip]] = nodes[by_ip[ip]] or up
        return nodes

    # ---- a host lost, and back
    def lose(self, host: str) -> float:
        """Host `host` lost (hosts.take_down: every process of it killed, its link down); returns
        the seconds until the GCS marks its node dead (bounded: DEAD_DEADLINE_S)."""
        began = time.monotonic()
        self.hosts.take_down(host)
        self._reap()
        _poll(lambda: self._nodes_or_empty().get(host, True) is False, f"the GCS to mark {host} dead",
              DEAD_DEADLINE_S, lambda: f" (GCS: {self._nodes_or_empty()})")
        return round(time.monotonic() - began, 2)

    def restore(self, host: str) -> float:
        """Host `host` back (hosts.bring_up) with its Ray worker node again; returns the seconds
        until the GCS has the new node alive (bounded: START_DEADLINE_S)."""
        if host == self.head:
            raise ValueError(f"{host} is the head: a lost head is a lost cluster (stop, start)")
        began = time.monotonic()
        self.hosts.bring_up(host)
        self._start_node(host)
        self._wait_alive([host], START_DEADLINE_S)
        return round(time.monotonic() - began, 2)

    # ---- stop
    def stop(self) -> None:
        """Every Ray process of this cluster (its `ray start` process groups and every process
        carrying MARKER), SIGTERM then SIGKILL, by PID; raises unless none is left (bounded).
        Then its files. Nothing else: never `ray stop`."""
        self._kill(self._state())
        self._procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_stale(self) -> None:
        """A leftover of the same name: stopped, unless its owner (another live process) uses it."""
        state = self._state()
        owner = state.get("owner")
        if owner and owner[0] != os.getpid() and alive(*owner):
            raise RuntimeError(f"Ray cluster {self.root} is in use by PID {owner[0]}")
        self.stop()

    def _kill(self, state: dict) -> None:
        """SIGTERM to each node's `ray start` alone: it stops its node's processes in order (~2 s);
        signalled all at once, gcs_server and the raylets linger 10 s and more. (No `ray start`
        left: every marked process.) Then SIGKILL to whatever is left, groups and all."""
        leaders = [tuple(n) for n in state.get("nodes", {}).values() if n[1] is not None]
        self._signal([p for p in leaders if alive(*p)] or self._ray_pids(), signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            _poll(lambda: not self._left(leaders), "Ray to stop", STOP_GRACE_S)
        for pid, started in leaders:
            if alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self._signal(self._ray_pids(), signal.SIGKILL)
        _poll(lambda: not self._left(leaders), "every Ray process to end", STOP_DEADLINE_S,
              lambda: f": left {self._left(leaders)}")

    @staticmethod
    def _signal(pids: list[tuple[int, int]], sig: int) -> None:
        """Each process checked by its start time first, so that no reused PID is signalled."""
        for pid, started in pids:
            if alive(pid, started):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def _left(self, leaders: list[tuple[int, int]]) -> list[tuple[int, int]]:
        self._reap()
        return [p for p in leaders if alive(*p)] + self._ray_pids()

    def _reap(self) -> None:
        for proc in self._procs.values():
            proc.poll()

    def _ray_pids(self) -> list[tuple[int, int]]:
        """Every live process of this cluster: MARKER=<root> in its environment, or <root> on its
        command line (a process that changed its environment). (pid, start time)."""
        marker, root = f"{MARKER}={self.root}".encode(), str(self.root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                environ = (entry / "environ").read_bytes().split(b"\0")
                cmdline = (entry / "cmdline").read_bytes()
                started = start_time(int(entry.name))
                if started is not None and (marker in environ or root in cmdline):
                    found.append((int(entry.name), started))
        return found


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
