#!/usr/bin/env bash
# A test cluster of several hosts on this machine (issue 33): N network + UTS namespaces on a
# private bridge (10.77.0.0/24 by default), one slurmctld on the bridge's address, one slurmd per
# host, each its own NodeName/NodeAddr. It runs beside the one-node Slurm of tests/setup_slurm.sh
# with its own slurm.conf, ports (7817/7818), state under /run/tau2train-t2c and munged socket.
# The work is tests/helpers/hosts.py (also what the tests' `multihost` fixture uses); this runs it.
# Needs root, Slurm and munge (tests/setup_slurm.sh installs them). Idempotent; every wait bounded.
#   sudo bash tests/setup_cluster.sh start          # make test does this
#   sudo bash tests/setup_cluster.sh status         # hosts, daemons and their memory
#   eval "$(bash tests/setup_cluster.sh env)"; sinfo   # Slurm's clients, on this cluster
#   sudo bash tests/setup_cluster.sh run t2c2 -- hostname   # a command as host t2c2
#   sudo bash tests/setup_cluster.sh down t2c3 / up t2c3    # a host lost, and back
#   sudo bash tests/setup_cluster.sh stop           # every daemon, namespace, link and file it made
#   (--hosts N before the command: N hosts; --name/--subnet/--ctld-port/--slurmd-port: a second cluster)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# `ip` (iproute2) makes the namespaces and links; minimal images lack it
if [ "${1:-start}" = start ] && ! command -v ip >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends iproute2 >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 >/dev/null; }
fi
# root's python3 (sudo's PATH), else the project's: the helper needs only the standard library
python="$(command -v python3 || true)"
[ -n "$python" ] || python="$here/../.venv/bin/python"
exec "$python" "$here/helpers/hosts.py" "${@:-start}"
