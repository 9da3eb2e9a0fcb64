"""Training stops, with one clear message, when a user simulator stays down past
`econfig.user_llm_outage_s`.

While it is down the episodes wait for it (tau2train.rollout.chat.Outage), so training pauses
rather than burning them. This process (AReaL's controller) watches each user simulator the
run talks to; once one has not answered for the whole limit it raises `UserSimOutage` in the
main thread, which unwinds like Ctrl-C (AReaL's trainer stops its workers on the way out), and
the same command resumes from the last checkpoint once the server is back.
"""

from __future__ import annotations

import contextlib
import signal
import time

import httpx

from tau2train.config.checked import Endpoint
from tau2train.launch.watch import RunStopped, Watch, stopping_on

# The signal the watcher sends the main thread (its handler raises UserSimOutage there).
OUTAGE_SIGNAL = signal.SIGUSR1
# Seconds between probes, at most; a probe's own timeout.
PROBE_EVERY_S, PROBE_TIMEOUT_S = 5.0, 5.0


class UserSimOutage(RunStopped):
    """A user simulator stayed down past the limit; the message names the URL."""


def answers(url: str) -> bool:
    """Whether an OpenAI-compatible server answers at `url` (any HTTP status will do)."""
    try:
        httpx.get(url.rstrip("/") + "/models", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return True


class Watcher(Watch):
    """Probes each endpoint; the first down for `limit_s` ends the watch with its message."""

    def __init__(self, endpoints: tuple[Endpoint, ...], limit_s: float):
        super().__init__("tau2train-user-sim-watch", min(PROBE_EVERY_S, limit_s / 5))
        self.endpoints, self.limit_s = endpoints, limit_s
        self.down_since: dict[str, float] = {}

    def check(self) -> str | None:
        for endpoint in self.endpoints:
            now = time.monotonic()
            if answers(endpoint.url):
                self.down_since.pop(endpoint.url, None)
                continue
            since = self.down_since.setdefault(endpoint.url, now)
            if now - since >= self.limit_s:
                return outage_message(endpoint, now - since, self.limit_s)
        return None


def outage_message(endpoint: Endpoint, down_s: float, limit_s: float) -> str:
    return (f"the user simulator at {endpoint.url} ({endpoint.key}) has not answered for {down_s:.0f} s, "
            f"past econfig.user_llm_outage_s={limit_s:g}: training stopped. Start it again (tau2train-user-sim, "
            "or the server at that URL) and rerun the same command: it resumes from the last checkpoint "
            "(recover.mode=auto; on Slurm the default)")


def stop_on_user_sim_outage(endpoints: tuple[Endpoint, ...], limit_s: float):
    """While inside (in the main thread), a user simulator down for `limit_s` raises
    UserSimOutage here."""
    if not endpoints:
        return contextlib.nullcontext()
    return stopping_on(Watcher(endpoints, limit_s), UserSimOutage, OUTAGE_SIGNAL)
