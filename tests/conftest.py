"""Shared set-up: no network, offline wandb, pytest's temporary directories, the scripted LLM
server fixture. Helpers live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import in_process, slurm_overrides
from helpers.served import served

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["WANDB_MODE"] = "offline"

# Keep tmp_path out of /tmp: tau2train rightly refuses node-local /tmp as the shared storage
# of a multi-node Slurm layout, and the tests use such layouts. pytest's numbered, locked
# directories under this root keep concurrent sessions apart.
TEMP_ROOT = Path.home() / ".cache" / "tau2train" / "pytest-root"
TEMP_ROOT.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(TEMP_ROOT))


AREAL_MODULES = "test_areal_"  # the modules whose tests start AReaL (marker `areal`)
# the modules on the several-host cluster that start no AReaL: run with the AReaL ones (below),
# as the multi-host AReaL run takes every host of the cluster whole
CLUSTER_MODULES = ("test_cluster.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `areal` marker and the module name say the same thing (the scheduler below reads
    the name, as a node id is all it sees). A test on the several-host cluster (the `multihost`
    fixture) is marked `multihost`, and `slurm` with it (make test-quick leaves them out)."""
    for item in items:
        named = Path(str(item.path)).name.startswith(AREAL_MODULES)
        if named != (item.get_closest_marker("areal") is not None):
            raise pytest.UsageError(
                f"{item.nodeid}: tests that start AReaL are marked `areal` and live in "
                f"tests/{AREAL_MODULES}*.py, and only they")
        marked = item.get_closest_marker("multihost") is not None
        params = getattr(getattr(item, "callspec", None), "params", {})  # a parameter of that name is none
        uses = "multihost" in getattr(item, "fixturenames", ()) and "multihost" not in params
        if (uses and not marked) or (marked and item.get_closest_marker("slurm") is None):
            raise pytest.UsageError(f"{item.nodeid}: a test on the several-host cluster is marked "
                                    "`multihost` and `slurm`")
        if marked and not (named or Path(str(item.path)).name in CLUSTER_MODULES):
            raise pytest.UsageError(f"{item.nodeid}: a test on the several-host cluster lives in "
                                    f"tests/{AREAL_MODULES}*.py or in one of {CLUSTER_MODULES}")


@pytest.hookimpl(optionalhook=True)  # an environment without pytest-xdist (GPU nodes) runs the tests in one process
def pytest_xdist_make_scheduler(config, log):
    """`make test`'s two workers (pytest-xdist, --dist loadscope): a module runs whole on one
    worker, so its module-scoped set-ups (an AReaL run, a served fixture) are made once; and the
    AReaL modules (and CLUSTER_MODULES) run on one worker, one after another. AReaL seeds its port choice with the
    run's seed, so two runs at once could pick the same ports, and two runs' memory (~10 GB for
    the training run) would crowd this 24 GiB machine. (xdist's own loadgroup cannot do this
    under pytest 9: it renames node ids through an attribute pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAReaLTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            name = Path(module).name
            return "areal" if name.startswith(AREAL_MODULES) or name in CLUSTER_MODULES else module

        def _assign_work_unit(self, node) -> None:
            # AReaL's runs first, whatever the order: theirs is the longest chain
            if "areal" in self.workqueue:
                self.workqueue.move_to_end("areal", last=False)
            super()._assign_work_unit(node)

    return ModulesAReaLTogether(config, log)


@pytest.fixture(scope="session")
def llm():
    """The scripted OpenAI-compatible server (tests/helpers/scripted_llm.py), shared by the session."""
    from helpers.scripted_llm import ScriptedLLM

    yield from served(ScriptedLLM())


@pytest.fixture(scope="module")
def plain_user():
    """A user simulator that needs no script (tests/helpers/plain_user.py), for AReaL's runs."""
    from helpers.plain_user import PlainUserLLM

    yield from served(PlainUserLLM())


@pytest.fixture(scope="session")
def multihost():
    """The several-host test cluster (tests/helpers/hosts.py: 3 hosts on this machine, a Slurm
    over them; its clients through `cluster.slurm(...)` / `cluster.env()`). The one
    tests/setup_cluster.sh started (make test does) is used and left up; else the first user
    starts it and the last (of this session's pytest-xdist workers) stops it."""
    from helpers.hosts import Cluster, require_root

    require_root()
    hosts = Cluster()
    try:
        hosts.acquire()
    except FileNotFoundError as missing:
        pytest.fail(f"no test cluster: {missing}", pytrace=False)
    yield hosts
    hosts.release()


@pytest.fixture(scope="module")
def host_user_sim(multihost):
    """The scripted user simulator where the several hosts reach this machine (the bridge's
    address), for a module's runs on them."""
    from helpers.plain_user import PlainUserLLM

    server = PlainUserLLM(host=multihost.spec.head_address)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster(multihost):
    """A Ray cluster over the several-host cluster (tests/helpers/ray_cluster.py: the head on its
    first host, a worker node on each other), started on first use (~20 s) and stopped at the
    session's end. A test that loses a host restores it (`ray_cluster.restore(host)`)."""
    from helpers.ray_cluster import RayCluster

    ray = RayCluster(multihost).start()
    yield ray
    ray.stop()


@pytest.fixture
def slurm_root(tmp_path: Path) -> list[str]:
    return slurm_overrides(tmp_path)


@pytest.fixture
def cli():
    """`cli(*args, cwd=..., env=...)`: tau2train.run.main in this process (helpers/cli.py)."""
    return in_process
