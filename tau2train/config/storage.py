"""Where a run writes (cluster.fileroot) and where AReaL's workers find each other
(cluster.name_resolve.nfs_record_root), as its cluster backend needs them: on a backend whose
processes run on other machines (slurm, ray), absolute paths on storage they all see, and no
node-local directory once the run's processes may be on several nodes, unless the backend's
shared-paths setting states that directory is shared there."""

from __future__ import annotations

import os

from tau2train.config.clusters import cluster_checks
from tau2train.config.errors import ConfigError
from tau2train.schemas import ExperimentConfig

PLACEHOLDER_PREFIX = "/path/to"
# directories each node has its own of (tmpfs or a local disk), whatever a path's name under them
NODE_LOCAL_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
SHARED_STORAGE = "an absolute path on shared storage (NFS, Lustre, GPFS, ...)"


def check_storage(exp: ExperimentConfig) -> None:
    """The run's paths, as its cluster backend needs them; ConfigError on the first that is not."""
    check_no_whitespace(exp)
    checks = cluster_checks(exp)
    if not checks.runs_elsewhere:
        return
    shared_key, shared = checks.shared_paths(exp)
    check_shared_paths(shared_key, shared)
    for key, path in (
        ("cluster.fileroot", exp.cluster.fileroot),
        ("cluster.name_resolve.nfs_record_root", exp.cluster.name_resolve.nfs_record_root),
    ):
        valid, fix = SHARED_STORAGE, f"add {key}=/your/shared/storage/..."
        if path.startswith(PLACEHOLDER_PREFIX):
            problem = "is a placeholder, not a real directory"
        elif not os.path.isabs(path):
            problem = "must be an absolute path"
        elif checks.spans_nodes(exp) and (local := node_local_dir(path)) and not under_any(path, shared):
            problem = f"{local} is local to each node; {checks.nodes_described(exp)} need shared storage"
            valid += f", or a path under one {shared_key} names"
            fix += (f", or, when {path} is in fact shared by every node (shared storage mounted there), "
                    f"{shared_key}=[{path}]")
        else:
            continue
        raise ConfigError(
            key, path, f"cluster={exp.launcher} needs a shared directory every node can see; this {problem}",
            valid=valid, fix=fix,
        )


def under(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def under_any(path: str, roots: list[str]) -> bool:
    """`path` lies in one of `roots`, as written or with its symlinks followed."""
    return any(under(path, r) or under(os.path.realpath(path), os.path.realpath(r)) for r in roots)


def node_local_dir(path: str) -> str | None:
    """The node-local directory (NODE_LOCAL_DIRS) `path` lies in, as written or with its symlinks
    followed (a link into /tmp is no shared directory), or None."""
    for candidate in (path, os.path.realpath(path)):
        for local in NODE_LOCAL_DIRS:
            if under(candidate, local):
                return local
    return None


def check_shared_paths(key: str, paths: list[str]) -> None:
    """The backend's shared-paths setting (`key`): absolute directories (what the storage check
    accepts under them)."""
    for index, path in enumerate(paths):
        if not (isinstance(path, str) and os.path.isabs(path)):
            raise ConfigError(
                f"{key}[{index}]", path, "is not an absolute path",
                valid="absolute directories every node shares, e.g. [/tmp/tau2-shared]",
                fix=f"write the directory's absolute path in {key}",
            )


def check_no_whitespace(exp: ExperimentConfig) -> None:
    """AReaL's schedulers start each worker through a shell pipeline that writes its log with
    `tee <cluster.fileroot>/logs/...`, the path unquoted (areal/infra/utils/proc.py
    build_streaming_log_cmd, run with shell=True): under a directory whose path holds a space
    the worker starts, but its log goes nowhere and its engine dies ("Broken pipe")."""
    path = exp.cluster.fileroot
    if any(c.isspace() for c in path):
        raise ConfigError(
            "cluster.fileroot", path,
            "holds a space: AReaL writes each worker's log through an unquoted shell command "
            "(tee <cluster.fileroot>/logs/...), and the worker dies once its log cannot be written",
            valid="a directory path without spaces (dots are fine)",
            fix="set cluster.fileroot to a path without spaces, e.g. a symlink to this directory",
        )
