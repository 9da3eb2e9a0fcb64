"""A test fixture's server, the same for every kind the tests start in their own process (the
scripted LLM and its users, the rule-based user, the CPU SGLang server): started before the
fixture's tests, stopped after them. A fixture body is `yield from served(Server(...))`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar


class Server(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def served(server: S) -> Iterator[S]:
    """Start `server`, hand it to the fixture's tests, stop it once they are done."""
    server.start()
    yield server
    server.stop()
