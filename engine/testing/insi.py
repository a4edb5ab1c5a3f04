"""A scripted INSi: the engine's simulator on a real loopback HTTP server, answering each
request with the next answer of a script instead of searching its persons.

    async with scripted_insi(found(person), NOT_FOUND, OUTAGE) as (insi, server):
        ...                          # point `[insi] url` at server.url
        assert insi.requests == 3

The requests are still checked as the simulator checks them (SOAP envelope, addressing and
context headers, IDAM, client certificate CN): a malformed request is refused, not scripted.
Once the script is used up, the simulator searches its persons as usual.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from engine.ins.simulator.dataset import Person, public_test_persons
from engine.ins.simulator.handler import InsiSimulator, Reply
from engine.ins.simulator.matching import PersonIndex
from engine.ins.simulator.server import RunningSimulator, start_server
from engine.ins.traits import TraitsQuery


@dataclass(frozen=True)
class Answer:
    """One scripted answer: the persons the search finds (none, one, several) or an outage."""

    persons: tuple[Person, ...] = ()
    outage: bool = False


NOT_FOUND = Answer()
OUTAGE = Answer(outage=True)
"""The service's own fault for an outage: siram_40/insi_102, HTTP 500."""


def found(person: Person) -> Answer:
    return Answer((person,))


def several(*persons: Person) -> Answer:
    return Answer(persons)


class _Matches(PersonIndex):
    """Stands for the person index while one scripted answer is given: whatever the query,
    the answer's persons."""

    def __init__(self, persons: tuple[Person, ...]) -> None:
        super().__init__(persons)
        self._answer = list(persons)

    def search(self, query: TraitsQuery) -> list[Person]:
        return self._answer


class ScriptedInsi(InsiSimulator):
    """The simulator, its search results and outages taken from a script, in order."""

    def __init__(self, *script: Answer, persons: Iterable[Person] | None = None) -> None:
        super().__init__(public_test_persons() if persons is None else persons)
        self._script = deque(script)
        self._persons = self.index

    def handle(
        self, request: bytes, headers: Mapping[str, str], client_cn: str | None = None
    ) -> Reply:
        answer = self._script.popleft() if self._script else None
        # The simulator's own fault injection and search, set for this one answer: a fault
        # rate of 1 always faults, 0 never does.
        self.fault_rate = 1.0 if answer is not None and answer.outage else 0.0
        self.index = self._persons if answer is None else _Matches(answer.persons)
        return super().handle(request, headers, client_cn)


@contextlib.asynccontextmanager
async def scripted_insi(
    *script: Answer, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[ScriptedInsi, RunningSimulator]]:
    """A `ScriptedInsi` served on a free loopback port for the `async with` block."""
    insi = ScriptedInsi(*script)
    server = await start_server(insi, "127.0.0.1", 0, ssl_context)
    try:
        yield insi, server
    finally:
        await server.aclose()
