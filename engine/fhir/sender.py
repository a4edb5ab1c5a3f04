"""The `Sender` of a `fhir` destination: one outbox entry, read and fed to the server.

The entry's bytes are what the route's steps and the outbound INS guard let leave; the
feed (`engine.fhir.feed`) maps them to FR Core Patient and makes the ITI-104
interactions. A message that cannot be read is parked (no retry would read it better); a
server that cannot be reached is retried with the destination's back-off.
"""

from __future__ import annotations

from engine.config.settings import DestinationSettings, RouteSettings
from engine.delivery.destination import Outcome, Result
from engine.fhir.feed import Feed
from engine.fhir.patient import PatientOptions
from engine.fhir.server import FhirServer, Unreachable
from engine.fhir.settings import FhirSettings
from engine.hl7.charset import CharsetError, CharsetPolicy, decode
from engine.hl7.message import Message, MessageFormatError
from engine.store.base import OutboxEntry


def patient_options(route: RouteSettings, settings: FhirSettings) -> PatientOptions:
    """The mapping's options: the destination's local system, the route's INS guard's
    choice about test INS (the same rule as for the route's HL7 destinations)."""
    guard = route.guard_settings("ins_guard")
    allow_test = bool(getattr(guard, "allow_test_ins", False))
    return PatientOptions(local_system=settings.local_system, allow_test_oids=allow_test)


def charset_policy(route: RouteSettings) -> CharsetPolicy:
    return CharsetPolicy(route.charset, route.default_charset, route.fallback_charset)


def read_message(payload: bytes, policy: CharsetPolicy) -> Message:
    """The outbound message, decoded as the route decodes what it receives."""
    return Message.parse(decode(payload, policy).text)


class FhirSender:
    def __init__(self, route: RouteSettings, destination: DestinationSettings) -> None:
        settings: FhirSettings = destination.kind_tables["fhir"]
        self._feed = Feed(settings, patient_options(route, settings))
        self._server = FhirServer(settings, destination)
        self._policy = charset_policy(route)

    async def send(self, entry: OutboxEntry) -> Result:
        try:
            message = read_message(entry.payload, self._policy)
        except (CharsetError, MessageFormatError) as error:
            return Result(Outcome.PARK, error=f"the message cannot be read: {error}")
        try:
            return await self._feed.apply(message, self._server.send)
        except Unreachable as error:
            return Result(Outcome.RETRY, error=str(error))

    async def close(self) -> None:
        await self._server.close()
