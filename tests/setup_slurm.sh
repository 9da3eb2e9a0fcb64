#!/usr/bin/env bash
# A real one-node Slurm on localhost for the tests (and for trying tau2train's Slurm path):
# installs Debian's slurmctld, slurmd, slurm-client and munge when missing, writes a
# slurm.conf for this machine (proctrack/linuxproc, task/none: no cgroups needed, its real
# CPUs and memory) and starts munged, slurmctld and slurmd. Needs root. Idempotent.
#   sudo bash tests/setup_slurm.sh && sinfo
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }
fi

# munge: the authentication every Slurm daemon and client uses.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
# (asked of their sockets and PID files, not by name: tests/setup_cluster.sh runs a munged,
# slurmctld and slurmds of its own beside these)
running() { [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]; }
munge -n >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged

host=$(hostname -s)
cpus=$(nproc)
# leave 1 GiB to the system
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=tau2train
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MaxArraySize=10001
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF

running /run/slurmctld.pid slurmctld || /usr/sbin/slurmctld
running /run/slurmd.pid slurmd || /usr/sbin/slurmd

# ready when the node is schedulable (bounded wait: the daemons register within seconds)
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) echo "slurm: $host $state, $cpus CPUs, ${mem_mb} MB"; exit 0 ;; esac
  sleep 1
done
echo "slurm did not come up; see /var/log/slurm/*.log" >&2
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
