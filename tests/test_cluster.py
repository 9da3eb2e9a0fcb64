"""The several-host test cluster (tests/helpers/hosts.py, tests/setup_cluster.sh):
3 hosts on this machine as network + UTS namespaces on a private bridge, a Slurm over them beside
the one-node Slurm of tests/setup_slurm.sh. A job sent to each host runs there, under the host's
own name and address, as Slurm records it; the hosts reach each other by name; stopping a
cluster leaves no daemon, process, namespace, link or file of it. ~10 s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import wait_for
from helpers.hosts import NETNS_DIR, Cluster, Spec, alive, require_root, start_time

pytestmark = [pytest.mark.multihost, pytest.mark.slurm]

JOB_DEADLINE_S = 60


@pytest.fixture(autouse=True, scope="module")
def _as_root():
    require_root()


def ended(cluster: Cluster, job_ids: list[str]) -> dict[str, dict[str, str]] | None:
    records = cluster.jobcomp_records()
    return {j: records[j] for j in job_ids} if all(j in records for j in job_ids) else None


def node_field(cluster: Cluster, host: str, name: str) -> str:
    out = cluster.slurm("scontrol", "show", "node", host, "-o", check=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)[name]


def explain(cluster: Cluster):
    return lambda: f"; squeue:\n{cluster.slurm('squeue').stdout}\nsinfo:\n{cluster.slurm('sinfo').stdout}"


def test_a_job_on_each_host_runs_there_under_its_own_name_and_address(multihost, tmp_path):
    hosts = multihost.spec.hosts
    jobs = {}
    for host in hosts:
        jobs[host] = multihost.slurm(
            "sbatch", "--parsable", "-w", host, "-J", "t2c-where", "-c", "1", "--mem=50M",
            "-o", f"{tmp_path}/%j.out", "--wrap", 'echo "$(hostname) $(hostname -i) $SLURMD_NODENAME"',
            check=True).stdout.strip()
    records = wait_for(lambda: ended(multihost, list(jobs.values())), "the jobs' jobcomp records",
                       JOB_DEADLINE_S, explain(multihost))
    addresses = set()
    for host, job in jobs.items():
        record = records[job]
        assert record["JobState"] == "COMPLETED", record
        assert record["NodeList"] == host, record  # Slurm ran it on the host asked for
        address = node_field(multihost, host, "NodeAddr")
        assert address == multihost.spec.address(host)
        # what the job saw: the host's own name and address, not this machine's
        assert (tmp_path / f"{job}.out").read_text().split() == [host, address, host]
        addresses.add(address)
    assert len(addresses) == len(hosts) == 3


def test_one_step_spans_every_host_and_a_host_submits_to_another(multihost, tmp_path):
    # srun from this machine: each host's slurmstepd sends the step's output back over the bridge
    out = multihost.slurm("srun", "-N", str(multihost.spec.n_hosts), "--ntasks-per-node=1", "--mem=50M",
                          "sh", "-c", 'echo "$(hostname) $(hostname -i)"',
                          check=True, timeout=JOB_DEADLINE_S).stdout
    assert sorted(out.split("\n")[:-1]) == [f"{h} {multihost.spec.address(h)}" for h in multihost.spec.hosts]
    # sbatch from host 1 to host 2, as a controller job submits its workers (AReaL's Slurm
    # scheduler): the cluster's slurm.conf and slurmctld reach the hosts
    first, second = multihost.spec.hosts[:2]
    submitted = multihost.run(first, ["sbatch", "--parsable", "-w", second, "--mem=50M",
                                      "-o", f"{tmp_path}/%j.out", "--wrap", "hostname"])
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    records = wait_for(lambda: ended(multihost, [job]), "the job submitted from a host", JOB_DEADLINE_S,
                       explain(multihost))
    assert records[job]["NodeList"] == second and records[job]["JobState"] == "COMPLETED", records[job]
    assert (tmp_path / f"{job}.out").read_text().strip() == second


def test_hosts_reach_each_other_by_name(multihost):
    """A server on one host, a client on another, by the server's host name (/etc/hosts)."""
    first, second = multihost.spec.hosts[:2]
    server = multihost.popen(first, [sys.executable, "-c", (
        "import socket; s = socket.create_server(('0.0.0.0', 7900)); print('ready', flush=True); "
        "c, (peer, _) = s.accept(); c.sendall(socket.gethostname().encode() + b' ' + peer.encode())")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        client = multihost.run(second, [sys.executable, "-c", (
            f"import socket; c = socket.create_connection(('{first}', 7900), timeout=10); "
            "print(c.recv(100).decode())")])
        assert client.returncode == 0, client.stderr
        # the server is host 1 and saw host 2's own address
        assert client.stdout.split() == [first, multihost.spec.address(second)]
    finally:
        server.kill()
        server.wait(timeout=10)


def test_stop_leaves_nothing_of_the_cluster(tmp_path):
    """A second, short-lived cluster beside the session's (its own names, subnet and ports):
    started twice (the second start keeps it), a job and a host's command left running, then
    stopped: no daemon (by PID and start time), process of a host, namespace, link or file of
    it is left; the one-node Slurm still answers."""
    netns_before = NETNS_DIR.exists()
    spare = Cluster(Spec(name="t2x", n_hosts=3, subnet="10.78.0", ctld_port=7827, slurmd_port=7828))
    try:
        spare.start()
        daemons = spare.daemons()
        assert spare.start().daemons() == daemons  # idempotent: the same daemons
        assert set(daemons) == {"munged", "slurmctld", "slurmscriptd", "slurmd@t2x1", "slurmd@t2x2",
                                "slurmd@t2x3"}
        spare.slurm("sbatch", "-w", "t2x2", "--mem=50M", "-o", "/dev/null", "--wrap", "sleep 600", check=True)
        wait_for(lambda: "R" in spare.slurm("squeue", "-h", "-o", "%t").stdout.split(), "the job to run",
                 JOB_DEADLINE_S, explain(spare))
        left = spare.popen("t2x3", ["setsid", "sleep", "600"])  # a host's process outside any job
        made = spare.footprint()
        assert made["namespaces"] == ["t2x1", "t2x2", "t2x3"]
        assert made["links"] == ["t2x-br", "t2x1", "t2x2", "t2x3"]
        assert made["files"] == [str(spare.root), str(spare.spec.lock_path)]
        processes = {pid: start_time(pid) for host in spare.spec.hosts for pid in spare.host_pids(host)}
        assert len(processes) > 3  # the slurmds, the job's slurmstepd and sleep, the setsid sleep
    finally:
        spare.stop()
    left.wait(timeout=10)
    assert not [name for name, (pid, started) in daemons.items() if alive(pid, started)]
    assert not [pid for pid, started in processes.items() if started is not None and alive(pid, started)]
    assert spare.footprint() == {"daemons": {}, "namespaces": [], "links": [], "files": []}
    assert NETNS_DIR.exists() == netns_before
    spare.stop()  # idempotent: nothing to do
    # the one-node Slurm still answers
    assert subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10, check=False).returncode == 0


def test_the_script_runs_the_helper(tmp_path):
    """tests/setup_cluster.sh is tests/helpers/hosts.py's command line (no second copy)."""
    script = Path(__file__).parent / "setup_cluster.sh"
    out = subprocess.run(["bash", str(script), "--name", "t2y", "env"], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "export SLURM_CONF=/run/tau2train-t2y/slurm.conf"
