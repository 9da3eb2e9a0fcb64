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
import threading
import time
from collections.abc import Iterator

import httpx

from tau2train.config.checked import Endpoint

# The signal the watcher sends the main thread (its handler raises UserSimOutage there).
OUTAGE_SIGNAL = signal.SIGUSR1
# Seconds between probes, at most; a probe's own timeout.
PROBE_EVERY_S, PROBE_TIMEOUT_S = 5.0, 5.0


class UserSimOutage(KeyboardInterrupt):
    """A user simulator stayed down past the limit: unwinds the run as Ctrl-C does (AReaL's
    code catches Exception on the way, never KeyboardInterrupt); the message names the URL."""


def answers(url: str) -> bool:
    """Whether an OpenAI-compatible server answers at `url` (any HTTP status will do)."""
    try:
        httpx.get(url.rstrip("/") + "/models", timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return True


class Watcher(threading.Thread):
    """Probes each endpoint; the first down for `limit_s` ends the watch with its message."""

    def __init__(self, endpoints: tuple[Endpoint, ...], limit_s: float, on_outage):
        super().__init__(name="tau2train-user-sim-watch", daemon=True)
        self.endpoints, self.limit_s, self.on_outage = endpoints, limit_s, on_outage
        self.stopped = threading.Event()
        self.message: str | None = None

    def run(self) -> None:
        down_since: dict[str, float] = {}
        every = min(PROBE_EVERY_S, self.limit_s / 5)
        while not self.stopped.wait(every):
            for endpoint in self.endpoints:
                now = time.monotonic()
                if answers(endpoint.url):
                    down_since.pop(endpoint.url, None)
                    continue
                since = down_since.setdefault(endpoint.url, now)
                if now - since >= self.limit_s:
                    self.message = outage_message(endpoint, now - since, self.limit_s)
                    self.on_outage()
                    return


def outage_message(endpoint: Endpoint, down_s: float, limit_s: float) -> str:
    return (f"the user simulator at {endpoint.url} ({endpoint.key}) has not answered for {down_s:.0f} s, "
            f"past econfig.user_llm_outage_s={limit_s:g}: training stopped. Start it again (tau2train-user-sim, "
            "or the server at that URL) and rerun the same command: it resumes from the last checkpoint "
            "(recover.mode=auto; on Slurm the default)")


@contextlib.contextmanager
def stop_on_user_sim_outage(endpoints: tuple[Endpoint, ...], limit_s: float) -> Iterator[None]:
    """While inside (in the main thread), a user simulator down for `limit_s` raises
    UserSimOutage here."""
    if not endpoints or threading.current_thread() is not threading.main_thread():
        yield
        return
    main = threading.main_thread().ident
    watcher = Watcher(endpoints, limit_s, lambda: signal.pthread_kill(main, OUTAGE_SIGNAL))

    def raise_outage(signum, frame):
        signal.signal(OUTAGE_SIGNAL, signal.SIG_IGN)  # once: the unwinding must not be cut short
        raise UserSimOutage(watcher.message)

    previous = signal.signal(OUTAGE_SIGNAL, raise_outage)
    watcher.start()
    try:
        yield
    finally:
        watcher.stopped.set()
        signal.signal(OUTAGE_SIGNAL, previous)
