"""Failures are loud, as a user meets them with `mode=eval` against the scripted
server: an endpoint that is not the OpenAI-compatible API it is named as (its /v1 left out, or
serving another model) is refused before anything starts, naming which endpoint, the URL, what
it answered and the fix; an evaluation whose episodes failed outside the agent past
`eval.max_infra_failure_rate` exits non-zero, its files marked incomplete, no submission.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.scripted_llm import ScriptedLLM
from helpers.served import served

# two mock tasks the scripted user tells apart (other mock tasks share their scenario)
MOCK = ["mode=eval", "domain=mock", "domain.tasks=[update_task_1,impossible_task_1]", "econfig.user_llm=user",
        "tracking=none"]


def eval_args(llm, root: Path, *extra: str) -> list[str]:
    return [*MOCK, f"eval.agent_base_url={llm.base_url}", f"econfig.user_llm_base_url={llm.base_url}",
            f"cluster.fileroot={root}", *extra]


@pytest.fixture(scope="module")
def two_models():
    """A server listing two models (as a router or a hosted API does), neither the scripts' names."""
    yield from served(ScriptedLLM(models=("policy-a", "policy-b")))


@pytest.mark.parametrize("key,role", [
    ("eval.agent_base_url", "agent endpoint"),
    ("econfig.user_llm_base_url", "user simulator"),
    ("econfig.nl_judge.base_url", "NL-assertion judge"),
])
def test_a_base_url_without_v1_is_refused_before_anything_starts(cli, llm, tmp_path, key, role):
    base = llm.base_url.removesuffix("/v1")  # the server answers 404 there
    result = cli(*eval_args(llm, tmp_path / "exp", "eval.agent_model=gold", f"{key}={base}"), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {key}='{base}': the {role} answered GET {base}/models with HTTP 404 Not Found; "
        "an OpenAI-compatible server lists its models there",
        "  valid: the base URL of a running OpenAI-compatible server, where GET <base>/models lists its "
        "models, e.g. http://host:8000/v1",
        f"  fix:   add /v1: {key}={base}/v1",
    ]
    assert not (tmp_path / "exp").exists()


def test_a_server_that_serves_other_models_is_refused(cli, llm, two_models, tmp_path):
    url = two_models.base_url
    result = cli(*eval_args(llm, tmp_path / "exp", f"eval.agent_base_url={url}", "eval.agent_model=gold"),
                 cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: eval.agent_base_url='{url}': the agent endpoint there serves policy-a, policy-b, not 'gold' "
        "(which eval.agent_model names)",
        "  valid: eval.agent_model: a model it serves (policy-a, policy-b)",
        "  fix:   set eval.agent_model to a model it serves, or eval.agent_base_url to the server that "
        "serves 'gold'",
    ]
    assert not (tmp_path / "exp").exists()


def test_a_server_listing_the_named_model_is_accepted(llm, two_models, tmp_path):
    """The model it lists by name, for the user simulator as litellm names it (openai/<name>)."""
    from tau2train.config.compose import compose
    from tau2train.launch.endpoints import check_endpoints
    from tau2train.launch.modes import checked

    url = two_models.base_url
    job = checked(compose([*MOCK, f"eval.agent_base_url={url}", "eval.agent_model=policy-b",
                           f"econfig.user_llm_base_url={url}", "econfig.user_llm=openai/policy-a",
                           f"cluster.fileroot={tmp_path}"]))
    assert [(e.role, e.model) for e in (job.scored, *job.user_sims)] == [
        ("agent endpoint", "policy-b"), ("user simulator", "policy-a")]
    check_endpoints(job)  # no ConfigError


@pytest.mark.parametrize("limit", [None, "0.5"], ids=["default limit", "limit 0.5"])
def test_an_evaluation_failing_outside_the_agent_past_the_limit_exits_non_zero(cli, llm, tmp_path, limit):
    # "flaky" answers HTTP 500 throughout each task's second episode: 2 of 4 episodes fail (0.5)
    llm.episodes.clear()  # episode numbers count from 0 again (the server is the session's)
    extra = [] if limit is None else [f"eval.max_infra_failure_rate={limit}"]
    result = cli(*eval_args(llm, tmp_path / "exp", "eval.agent_model=flaky", "eval.num_trials=2",
                            "eval.max_concurrency=1", *extra),  # one at a time: each task's trial 1 fails
                 cwd=tmp_path)
    [metrics] = (tmp_path / "exp").rglob("metrics.json")
    out = metrics.parent
    report = json.loads(metrics.read_text())
    assert len(json.loads((out / "results.json").read_text())["simulations"]) == 4
    assert [f["cause"] for f in report["infra_failures"]] == ["agent_endpoint"] * 2
    if limit is not None:  # at the limit, not past it
        assert result.returncode == 0, result.stderr
        assert report["incomplete"] is None and (out / "submission.json").is_file()
        return
    why = (f"2 of 4 episodes failed outside the agent, more than eval.max_infra_failure_rate=0.1 allows "
           f"(cause: 2 agent endpoint); first: task update_task_1 trial 1: LLMCallFailed: agent LLM at "
           f"{llm.base_url}/ failed: InternalServerError: Error code: 500 - ")
    assert result.returncode == 1
    assert report["incomplete"].startswith(why)
    assert not (out / "submission.json").exists()
    assert result.stdout.strip().splitlines()[-1] == (
        'no leaderboard entry: the evaluation is incomplete (metrics.json: "incomplete")')
    lines = result.stderr.strip().splitlines()[-3:]
    assert lines[0] == f"error: the evaluation is incomplete: {report['incomplete']}"
    assert lines[1:] == [
        f"  written, marked incomplete: {metrics}, {out / 'results.json'}; no submission.json",
        "  fix:   check eval.agent_base_url and eval.agent_model, then evaluate again "
        "(eval.max_infra_failure_rate sets how many failures an evaluation may have)",
    ]
