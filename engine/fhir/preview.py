"""What a FHIR destination writes, without its server: the dry run route tests and
`ins-engine enrich --to-fhir` make (this is not a test double, it ships and runs there).

The feed (`engine.fhir.feed`) runs as the sender runs it, on the message the destination
receives, against a server that holds nothing yet: every search answers an empty searchset
Bundle, a conditional update 201 with the resource given the next id (`Patient/1`,
`Patient/2`...; the same URL keeps its id, so a Patient updated twice in one run is one
Patient), a delete 404. The reads are left out of what it shows: only the writes, in order,
each with the resource as the server holds it (its id given), so that a merged record's
`replaced-by` link names a resource of the same run.
"""

from __future__ import annotations

from typing import Any

from engine.config.settings import DestinationSettings, RouteSettings
from engine.delivery.destination import Outcome
from engine.delivery.kind import NotWritten, Write
from engine.fhir.feed import Feed
from engine.fhir.sender import charset_policy, patient_options, read_message
from engine.fhir.server import Answer, Request
from engine.fhir.settings import FhirSettings
from engine.hl7.charset import CharsetError
from engine.hl7.message import MessageFormatError

EMPTY_SEARCH = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


class EmptyServer:
    """The answers of a FHIR server that holds nothing yet, and the writes it was sent."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self._ids: dict[str, str] = {}  # conditional URL -> the id its resource was given

    async def send(self, request: Request) -> Answer:
        if request.method == "GET":
            return Answer(200, EMPTY_SEARCH)
        if request.method != "PUT" or request.body is None:
            self.writes.append({"method": request.method, "url": request.url})
            return Answer(404, None)
        number = self._ids.setdefault(request.url, str(len(self._ids) + 1))
        kind = request.body.get("resourceType", "Patient")
        stored: dict[str, Any] = {"resourceType": kind, "id": number}
        stored.update((key, value) for key, value in request.body.items() if key not in stored)
        self.writes.append({"method": "PUT", "url": request.url, "resource": stored})
        return Answer(201, stored, f"{kind}/{number}/_history/1")


class FhirDryRun:
    """A fhir destination of a route fed messages in order, on one `EmptyServer`."""

    def __init__(self, route: RouteSettings, destination: DestinationSettings) -> None:
        settings: FhirSettings = destination.kind_tables["fhir"]
        self._feed = Feed(settings, patient_options(route, settings))
        self._policy = charset_policy(route)
        self._server = EmptyServer()

    async def writes(self, payload: bytes) -> list[Write]:
        """The writes the feed makes for this message; `NotWritten` when the sender would
        park it (its reason, as `queue status` would show it)."""
        try:
            message = read_message(payload, self._policy)
        except (CharsetError, MessageFormatError) as error:
            raise NotWritten(f"the message cannot be read: {error}") from None
        first = len(self._server.writes)
        result = await self._feed.apply(message, self._server.send)
        if result.outcome is not Outcome.DELIVERED:
            raise NotWritten(result.error or f"the feed answers {result.outcome.value}")
        return self._server.writes[first:]
