"""A watch that stops the run: a thread of AReaL's controller process checks something every
few seconds (a user simulator answering, the role jobs' hosts alive) and, once it finds the run
cannot go on, raises its `RunStopped` in the main thread. That unwinds like Ctrl-C (AReaL's
code catches Exception on the way, never KeyboardInterrupt, and its trainer stops its workers
on the way out); the command's top level prints the message and exits non-zero.

A main thread blocked in a socket read or a lock is woken by the signal (PEP 475: the handler's
exception ends the call).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class RunStopped(KeyboardInterrupt):
    """The run cannot go on (a subclass says why; its message names what and what to do)."""


class Watch(threading.Thread):
    """Calls `check()` every `every_s` seconds until it returns a message (then `on_stop()` is
    called once) or `stopped` is set."""

    def __init__(self, name: str, every_s: float):
        super().__init__(name=name, daemon=True)
        self.every_s = every_s
        self.stopped = threading.Event()
        self.message: str | None = None
        self.on_stop = lambda: None

    def check(self) -> str | None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            message = self.check()
            if message is not None:
                self.message = message
                self.on_stop()
                return


@contextlib.contextmanager
def stopping_on(watch: Watch, raised: type[RunStopped], signum: signal.Signals) -> Iterator[None]:
    """While inside (in the main thread), `watch` finding a reason raises `raised(message)`
    here, through signal `signum`. Outside the main thread nothing is watched."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    main = threading.main_thread().ident
    watch.on_stop = lambda: signal.pthread_kill(main, signum)

    def raise_stop(_signum, _frame):
        signal.signal(signum, signal.SIG_IGN)  # once: the unwinding must not be cut short
        raise raised(watch.message)

    previous = signal.signal(signum, raise_stop)
    watch.start()
    try:
        yield
    except KeyboardInterrupt as interrupt:
        # a main thread waiting in `ray.get` (cluster=ray) runs the handler inside Ray's wait
        # loop, which drops the handler's exception and raises a bare KeyboardInterrupt instead
        # (ray._raylet.check_status on an interrupted status; Ray 2.60): once the watch has
        # found its reason, that is the message
        if isinstance(interrupt, RunStopped) or watch.message is None:
            raise
        raise raised(watch.message) from interrupt
    except Exception as error:
        # the run failed some other way first (AReaL's own check of a role job, say): when the
        # watch finds its reason now, that reason is the message
        watch.stopped.set()
        watch.join()  # its check under way, if any, ends first (each check is bounded)
        why = watch.message or watch.check()
        if why is None:
            raise
        raise raised(why) from error
    finally:
        watch.stopped.set()
        signal.signal(signum, previous)
