"""The base URLs of the servers a run's episodes talk to (the agent endpoint mode=eval scores,
the user simulators, the NL-assertion judge), each checked alike: an http(s) URL with a host.
Whether the OpenAI-compatible API answers there is asked as the run starts
(tau2train.launch.endpoints)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tau2train.config.errors import ConfigError


def check_base_url(key: str, url: str | None, role: str) -> None:
    """`url`, set at `key`, is the http(s) base URL of a server (`role`: what it is to the run)."""
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return
    no_scheme = bool(url) and "://" not in url
    raise ConfigError(
        key, url,
        "is not an http(s) URL" + (" (no http:// or https:// in front)" if no_scheme else ""),
        valid=f"the OpenAI-compatible base URL of the {role}, e.g. http://host:8000/v1",
        fix=f"set {key}=http://{url}" if no_scheme else f"set {key}=http://<host>:<port>/v1",
    )
