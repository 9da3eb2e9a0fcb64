"""Before a run starts or a Slurm job is submitted, each server its episodes talk to (the agent
endpoint mode=eval scores, the user simulators, the NL-assertion judge) is asked through the
OpenAI-compatible API itself: `GET <base>/models` must answer 200 with a model list that names
the model the run asks for, or lists one model only (vLLM and SGLang serve one, whatever name a
request gives). Anything else is one ConfigError naming the endpoint, its URL, what it answered
and the fix (e.g. a base URL without its /v1)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import httpx

from tau2train.config.checked import AGENT, JUDGE, USER_SIM, Checked, Endpoint
from tau2train.config.errors import ConfigError
from tau2train.launch.eval_episodes import AGENT_API_KEY_ENV
from tau2train.schemas import NL_JUDGE_API_KEY_ENV

# Seconds one probe may take.
PROBE_TIMEOUT_S = 5.0
VALID = "the base URL of a running OpenAI-compatible server, where GET <base>/models lists its models, " \
        "e.g. http://host:8000/v1"
# How many of the models a server lists a message names.
MODELS_SHOWN = 10


def endpoints(checked: Checked) -> tuple[Endpoint, ...]:
    """The servers the run's episodes talk to: the user simulators, the NL-assertion judge, and
    the endpoint that mode=eval scores (a served checkpoint starts later)."""
    return ((checked.scored,) if checked.scored else ()) + checked.user_sims + checked.judges


def check_endpoints(checked: Checked) -> None:
    """The servers the run's episodes talk to answer (before a job is started or submitted)."""
    for endpoint in endpoints(checked):
        check_endpoint(endpoint)


def check_endpoint(endpoint: Endpoint) -> None:
    """`GET <base>/models` answers 200, listing the endpoint's model or one model only."""
    url = endpoint.url.rstrip("/") + "/models"
    answer = ask(endpoint, url)
    served = model_list(answer)
    if served is None:
        raise not_the_api(endpoint, url, answer)
    if len(served) != 1 and endpoint.model not in served:
        raise model_not_served(endpoint, served)


def api_key_env(role: str) -> str:
    """The environment variable the episodes read `role`'s API key from."""
    from tau2train.rollout.workflow import USER_LLM_API_KEY_ENV

    return {AGENT: AGENT_API_KEY_ENV, USER_SIM: USER_LLM_API_KEY_ENV, JUDGE: NL_JUDGE_API_KEY_ENV}[role]


def ask(endpoint: Endpoint, url: str) -> httpx.Response:
    """The endpoint's answer to GET `url`, with the API key its episodes send (if one is set)."""
    key = os.environ.get(api_key_env(endpoint.role))
    try:
        return httpx.get(url, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as e:
        raise ConfigError(
            endpoint.key, endpoint.url,
            f"no server answers there (the {endpoint.role}: GET {url}: {type(e).__name__}: {e})",
            valid=VALID, fix=f"start that server, or set {endpoint.key} to where it listens",
        ) from None


def model_list(answer: httpx.Response) -> list[str] | None:
    """The model ids a 200 answer lists ({"data": [{"id": ...}, ...]}); None: no such list."""
    if answer.status_code != 200:
        return None
    try:
        return [str(model["id"]) for model in answer.json()["data"]]
    except (ValueError, KeyError, TypeError):
        return None


def not_the_api(endpoint: Endpoint, url: str, answer: httpx.Response) -> ConfigError:
    what = f"HTTP {answer.status_code} {answer.reason_phrase}".rstrip()
    return ConfigError(
        endpoint.key, endpoint.url,
        f"the {endpoint.role} answered GET {url} with {what}"
        + (", not a model list" if answer.status_code == 200 else "")
        + "; an OpenAI-compatible server lists its models there",
        valid=VALID, fix=api_fix(endpoint, answer.status_code),
    )


def api_fix(endpoint: Endpoint, status: int) -> str:
    if status in (401, 403):
        return f"export {api_key_env(endpoint.role)}=<the {endpoint.role}'s API key> (never in a config)"
    if not urlsplit(endpoint.url).path.rstrip("/").endswith("/v1"):
        return f"add /v1: {endpoint.key}={endpoint.url.rstrip('/')}/v1"
    return f"set {endpoint.key} to the server's OpenAI-compatible base URL"


def model_not_served(endpoint: Endpoint, served: list[str]) -> ConfigError:
    names = ", ".join(served[:MODELS_SHOWN]) + (f", ... ({len(served)} in all)" if len(served) > MODELS_SHOWN else "")
    return ConfigError(
        endpoint.key, endpoint.url,
        f"the {endpoint.role} there serves " + (names or "no model")
        + f", not {endpoint.model!r} (which {endpoint.model_key} names)",
        valid=f"{endpoint.model_key}: a model it serves" + (f" ({names})" if names else ""),
        fix=f"set {endpoint.model_key} to a model it serves, or {endpoint.key} to the server that serves "
        f"{endpoint.model!r}",
    )
