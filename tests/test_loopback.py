"""A loopback server URL (localhost, 127.0.0.1, ::1, 0.0.0.0) is refused for a Slurm job, whose
compute node would reach itself there, unless every node the job may run on is this machine (as
on the tests' one-node Slurm: Slurm's node list says so, or slurm.same_host=true states it), or the
server is one the job starts itself (mode=eval's served checkpoint). Slurm's node list comes in
through a seam (tau2train.config.endpoints.slurm_nodes): no job is submitted here."""

from __future__ import annotations

import socket

import pytest
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.config import endpoints as endpoints_module
from tau2train.config.compose import compose
from tau2train.config.endpoints import (
    SlurmNode,
    check_reached_from_slurm,
    loopback_host,
    parse_sinfo,
)
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.launch.clusters import backend
from tau2train.launch.endpoints import endpoints
from tau2train.launch.modes import checked

HERE = socket.gethostname()


def nodes_on(*hosts: str, partition: str = "debug", default: bool = True):
    """A seam standing in for `sinfo`: these hosts make up `partition`."""
    return lambda: ([SlurmNode(h, h, f"10.9.9.{i + 1}", partition, default) for i, h in enumerate(hosts)], "")


def never_asked():
    raise AssertionError("Slurm was asked, and nothing needed it")


def check(job, nodes):
    check_reached_from_slurm([(job.config, endpoints(job))], nodes)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("loopback")


@pytest.fixture(scope="module")
def slurm_job(root):
    """A cluster=slurm training run whose user simulator is at 127.0.0.1 (as the tests' runs are)."""
    return checked(compose([USER_SIM, *slurm_overrides(root), "tracking=none"]))


@pytest.mark.parametrize("url, host", [
    ("http://127.0.0.1:8000/v1/", "127.0.0.1"), ("http://127.8.0.1:8000/v1", "127.8.0.1"),
    ("http://localhost:8000/v1", "localhost"), ("http://LocalHost/v1", "localhost"),
    ("http://[::1]:8000/v1", "::1"), ("http://0.0.0.0:8000/v1", "0.0.0.0"),
    ("http://[::ffff:127.0.0.1]:1/v1", "::ffff:127.0.0.1"),
    ("http://user-sim-host:8000/v1", None), ("http://10.0.0.7:8000/v1", None), ("https://api.openai.com/v1", None),
])
def test_loopback_hosts(url, host):
    assert loopback_host(url) == host


def test_refused_when_the_partitions_nodes_are_another_machine(slurm_job):
    with pytest.raises(ConfigError) as caught:
        check(slurm_job, nodes_on("gpu001", "gpu002"))
    error, message = caught.value, str(caught.value)
    assert error.key == "econfig.user_llm_base_url" and error.value == "http://127.0.0.1:8000/v1/", message
    for words in ("the Slurm job talks to the user simulator from its compute node, where 127.0.0.1 is the node",
                  f"partition debug, whose nodes gpu001, gpu002 are not this machine ({HERE}",
                  "valid: a host name or address the compute nodes reach",
                  "fix:   start the user simulator with `tau2train-user-sim cluster=slurm`",
                  "slurm.same_host=true if the jobs do run on this machine"):
        assert words in message, f"{words!r} not in:\n{message}"


def test_accepted_when_every_node_is_this_machine(slurm_job):
    check(slurm_job, nodes_on(HERE))
    # by its address (NodeAddr) as well as its name
    address = next(a[4][0] for a in socket.getaddrinfo(HERE, None))
    if not loopback_host(f"http://{address}"):
        check(slurm_job, lambda: ([SlurmNode("n1", "n1", address, "debug", True)], ""))


def test_the_tests_one_node_slurm_is_this_machine(slurm_job):
    """tests/setup_slurm.sh's node, as `sinfo -h -N -o '%N|%n|%o|%P'` lists it."""
    listing = f"{HERE}|{HERE}|127.0.0.1|debug*\n"
    assert parse_sinfo(listing) == [SlurmNode(HERE, HERE, "127.0.0.1", "debug", True)]
    check(slurm_job, lambda: (parse_sinfo(listing), ""))


def test_which_partitions_are_asked_about(slurm_job, root):
    def mixed():
        return [SlurmNode(HERE, HERE, "127.0.0.1", "debug", True), SlurmNode("gpu001", "gpu001", "10.0.0.1", "gpu", False)], ""

    check(slurm_job, mixed)  # the default partition: this machine
    for partition in ("gpu", "'debug,gpu'"):
        job = checked(compose([USER_SIM, *slurm_overrides(root), "tracking=none", f"slurm.partition={partition}"]))
        with pytest.raises(ConfigError, match="whose node gpu001 is not this machine"):
            check(job, mixed)
    job = checked(compose([USER_SIM, *slurm_overrides(root), "tracking=none", "slurm.partition=nope"]))
    with pytest.raises(ConfigError, match="Slurm lists no node in partition nope: where the jobs run cannot be told"):
        check(job, mixed)


def test_a_recorded_url_of_a_server_started_here_says_so(tmp_path):
    """`tau2train-user-sim` with cluster=local records 127.0.0.1; a cluster=slurm run reads it."""
    from tau2train.records.user_sim import write_record

    overrides = [*slurm_overrides(tmp_path), "tracking=none"]
    write_record(compose(overrides).config.user_sim.record_file, {"url": "http://127.0.0.1:8000/v1/", "host": "127.0.0.1"})
    job = checked(compose(overrides))
    assert job.config.econfig.user_llm_base_url == "http://127.0.0.1:8000/v1/"
    with pytest.raises(ConfigError) as caught:
        check(job, nodes_on("gpu001"))
    assert f"(recorded in {job.config.user_sim.record_file} by a user simulator started here with cluster=local)" \
        in str(caught.value), str(caught.value)


def test_refused_when_slurm_cannot_be_asked(slurm_job):
    with pytest.raises(ConfigError) as caught:
        check(slurm_job, lambda: (None, "sinfo failed: Unable to contact slurm controller"))
    message = str(caught.value)
    assert "Slurm cannot be asked where the jobs run (sinfo failed: Unable to contact slurm controller)" in message
    assert "slurm.same_host=true" in message


def test_the_declared_key_states_it(root):
    same = checked(compose([USER_SIM, *slurm_overrides(root), "tracking=none", "slurm.same_host=true"]))
    check(same, never_asked)
    other = checked(compose([USER_SIM, *slurm_overrides(root), "tracking=none", "slurm.same_host=false"]))
    with pytest.raises(ConfigError, match="slurm.same_host=false says the jobs run on other machines"):
        check(other, never_asked)


def test_a_url_the_nodes_reach_is_not_asked_about(root):
    job = checked(compose(["econfig.user_llm_base_url=http://user-sim-host:8000/v1/", *slurm_overrides(root),
                           "tracking=none"]))
    check(job, never_asked)


def test_a_local_run_is_unaffected(monkeypatch):
    monkeypatch.setattr(endpoints_module, "slurm_nodes", never_asked)
    job = checked(compose([USER_SIM, "tracking=none"]))
    backend(job.config).preflight([job])


def test_each_endpoint_key_is_checked(root):
    job = checked(compose([
        "mode=eval", "eval.agent_base_url='http://[::1]:30000/v1'", "domain=retail",
        "econfig.user_llm_base_url=http://user-sim-host:8000/v1/", "econfig.nl_judge.base_url=http://localhost:9/v1",
        *slurm_overrides(root), "tracking=none",
    ]))
    refused = []
    for endpoint in endpoints(job):
        try:
            check_reached_from_slurm([(job.config, [endpoint])], nodes_on("gpu001"))
        except ConfigError as error:
            refused.append(error.key)
    assert refused == ["eval.agent_base_url", "econfig.nl_judge.base_url"]
    trained = checked(compose([
        "econfig.user_llm_by_domain={airline:{base_url:'http://0.0.0.0:9/v1/'}}", *slurm_overrides(root),
        "tracking=none",
    ]))
    with pytest.raises(ConfigError) as caught:
        check(trained, nodes_on("gpu001"))
    assert caught.value.key == "econfig.user_llm_by_domain.airline.base_url", str(caught.value)


def test_the_evaluations_own_checkpoint_server_is_accepted(root):
    """eval.checkpoint: the job serves it on its own node and reaches it at 127.0.0.1 (eval.server.host)."""
    model = root / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    job = checked(compose(["mode=eval", f"eval.checkpoint={model}", "econfig.user_llm_base_url=http://user-sim-host:8000/v1/",
                           *slurm_overrides(root), "tracking=none"]))
    assert job.served is not None and job.config.eval.server.host == "127.0.0.1"
    check(job, nodes_on("gpu001"))


def test_the_command_refuses_before_anything_is_submitted_or_written(cli, tmp_path, monkeypatch):
    """As a user types it: exit 2, one message, no run directory, nothing submitted (and the
    loopback server is not probed: it would answer here, not on the node)."""
    import tau2train.config.endpoints as seam
    from tau2train.launch.clusters import slurm

    monkeypatch.setattr(seam, "slurm_nodes", nodes_on("gpu001"))
    monkeypatch.setattr(slurm, "check_endpoint", lambda endpoint: pytest.fail("probed before the loopback check"))
    monkeypatch.setattr(slurm, "submit", lambda *a: pytest.fail("submitted"))
    result = cli(USER_SIM, *slurm_overrides(tmp_path), "tracking=none", cwd=tmp_path)
    assert result.returncode == BAD_INPUT_EXIT_CODE, result.stderr
    assert result.stderr.startswith("error: econfig.user_llm_base_url='http://127.0.0.1:8000/v1/': names 127.0.0.1"), \
        result.stderr
    assert "fix:" in result.stderr and result.stdout == ""
    assert not (tmp_path / "experiments").exists(), list((tmp_path / "experiments").rglob("*"))

    # this machine's nodes: the check lets it through, to the probe of the server (none there)
    monkeypatch.setattr(seam, "slurm_nodes", nodes_on(HERE))
    monkeypatch.setattr(slurm, "check_endpoint", lambda endpoint: (_ for _ in ()).throw(
        ConfigError(endpoint.key, endpoint.url, "probed")))
    result = cli(USER_SIM, *slurm_overrides(tmp_path), "tracking=none", cwd=tmp_path)
    assert result.returncode == BAD_INPUT_EXIT_CODE
    assert "probed" in result.stderr and "loopback" not in result.stderr, result.stderr
