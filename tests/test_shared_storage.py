"""cluster=slurm's shared storage: a run whose jobs span several nodes (a multi-node
layout, or slurm.placement=per_role_jobs) is refused a cluster.fileroot or name-resolve root
under a node-local directory (/tmp, /var/tmp, /dev/shm, /run; as written or through a symlink),
with the fix, unless slurm.shared_paths declares that directory shared (as on the test cluster of
tests/setup_cluster.sh, whose hosts share this machine's files). A one-node job is not refused.
The set-up is tests/test_validation.py's (compose + checked; the CLI in-process for the dry runs)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError
from tau2train.launch.modes import checked

MULTI_NODE = ["model=qwen3_8b"]  # 3 nodes: per_role_jobs (slurm.placement=auto)
# USER_SIM's loopback URL, for jobs said to run on this machine (whether or not a Slurm answers)
SAME_HOST = "slurm.same_host=true"

# (overrides, key the message names, words the message must contain); {root}: the test's directory
REFUSED = {
    "fileroot in /dev/shm": (
        [*MULTI_NODE, "cluster.fileroot=/dev/shm/exp"], "cluster.fileroot",
        ["/dev/shm is local to each node; 3 nodes need shared storage",
         "or a path under one slurm.shared_paths names", "slurm.shared_paths=[/dev/shm/exp]"],
    ),
    "name-resolve root in /var/tmp": (
        [*MULTI_NODE, "cluster.name_resolve.nfs_record_root=/var/tmp/nr"],
        "cluster.name_resolve.nfs_record_root",
        ["/var/tmp is local to each node; 3 nodes need shared storage"],
    ),
    "fileroot in /tmp, one node, one job per role": (
        # (workers declared GPU-less, as tests/test_areal_slurm.py runs them: roles need no whole nodes)
        ["slurm.placement=per_role_jobs", "actor.scheduling_spec.0.gpu=0", "cluster.fileroot=/tmp/exp"],
        "cluster.fileroot",
        ["/tmp is local to each node; slurm.placement=per_role_jobs's jobs, each on a node Slurm picks, "
         "need shared"],
    ),
    "a symlink into /tmp": (
        [*MULTI_NODE, "cluster.fileroot={root}/to-tmp/exp"], "cluster.fileroot",
        ["/tmp is local to each node"],
    ),
    "a shared path declared for the other directory only": (
        [*MULTI_NODE, "cluster.fileroot=/tmp/t2c/exp", "cluster.name_resolve.nfs_record_root=/dev/shm/nr",
         "slurm.shared_paths=[/tmp/t2c]"],
        "cluster.name_resolve.nfs_record_root", ["/dev/shm is local to each node"],
    ),
    "a shared path that is not absolute": (
        [*MULTI_NODE, "slurm.shared_paths=[tmp/t2c]"], "slurm.shared_paths[0]", ["is not an absolute path"],
    ),
}

ACCEPTED = {
    "declared shared": [*MULTI_NODE, "cluster.fileroot=/tmp/t2c/exp",
                        "cluster.name_resolve.nfs_record_root=/tmp/t2c/nr", "slurm.shared_paths=[/tmp/t2c]"],
    "declared through its symlink's target": [*MULTI_NODE, "cluster.fileroot={root}/to-tmp/exp",
                                              "slurm.shared_paths=[/tmp/tau2train-no-such-dir]"],
    "one node, one job": ["cluster.fileroot=/tmp/exp", "cluster.name_resolve.nfs_record_root=/dev/shm/nr"],
    "a multi-node run's evaluation (one job)": [*MULTI_NODE, "mode=eval", "eval.agent_base_url=http://h:1/v1",
                                                "cluster.fileroot=/tmp/exp"],
}


def overrides(root: Path, extra: list[str]) -> list[str]:
    (root / "to-tmp").symlink_to("/tmp/tau2train-no-such-dir")
    return [*slurm_overrides(root), USER_SIM, SAME_HOST, *(o.format(root=root) for o in extra)]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_node_local_storage_of_a_run_across_nodes_is_refused(case, tmp_path):
    extra, key, words = REFUSED[case]
    with pytest.raises(ConfigError) as caught:
        checked(compose(overrides(tmp_path, extra)))
    message = str(caught.value)
    assert caught.value.key == key, message
    assert "fix:" in message, message
    for word in words:
        assert word in message, f"{word!r} not in:\n{message}"


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_shared_or_one_node_storage_is_accepted(case, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-shared-storage")  # mode=eval's endpoint
    checked(compose(overrides(tmp_path, ACCEPTED[case])))


def test_the_dry_run_refuses_with_the_fix_and_plans_once_declared(cli, tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="tau2train-shared-", dir="/tmp"))
    try:
        args = ["dry_run=true", *MULTI_NODE, USER_SIM, SAME_HOST, "cluster=slurm",
                f"cluster.fileroot={shared}/exp", f"cluster.name_resolve.nfs_record_root={shared}/nr"]
        refused = cli(*args, cwd=tmp_path)
        assert refused.returncode == 2
        assert refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [
            (f"error: cluster.fileroot='{shared}/exp': cluster=slurm needs a shared directory every node "
             "can see; this /tmp is local to each node; 3 nodes need shared storage"),
            ("  valid: an absolute path on shared storage (NFS, Lustre, GPFS, ...), or a path under one "
             "slurm.shared_paths names"),
            (f"  fix:   add cluster.fileroot=/your/shared/storage/..., or, when {shared}/exp is in fact "
             f"shared by every node (shared storage mounted there), slurm.shared_paths=[{shared}/exp]"),
        ]
        assert list(shared.iterdir()) == []
        planned = cli(*args, f"slurm.shared_paths=[{shared}]", cwd=tmp_path)
        assert planned.returncode == 0, planned.stderr
        assert "placement: per_role_jobs" in planned.stdout
    finally:
        shutil.rmtree(shared)
