"""The IHE ITI-104 Patient Identity Feed: what one ADT message does on the FHIR server.

Every interaction is keyed on the patient's **local identifier** (PID-3 with CX-5 `PI`),
never on the INS, which may be absent, change from NIA to NIR, or be withdrawn:

- add or revise (A28, A31, A01, A04, A05; A08 when listed): `PUT Patient?identifier=PI`
  with the whole resource, so the server creates the Patient once and updates it after;
- merge (A40): the survivor (PID) is revised as above, then the absorbed record (MRG-1) is
  updated `active = false` with a `replaced-by` link to the survivor; an absorbed record
  the server never had is created so, so that a late message for it cannot make it active;
- change of identifier (A47): MRG-1 names the identifier replaced. A replaced local
  identifier moves the server's Patient to the new one (kept with `use = old`); a replaced
  INS is kept with `use = old` (when the identity is qualified, as any INS);
- removal (only for the events listed in `remove_events`): `DELETE Patient?identifier=PI`.

**An older message never overwrites a newer one.** Each resource carries the time of the
event it was written from (EVN-2, or MSH-7) and the message's control ID in an extension
(`SOURCE_EVENT`). Before writing, the feed reads the Patient; when the server's copy comes
from a later event, the message is not written (counted as delivered, ACK code `older`).
The lane is this destination's only writer (one lane per patient, under its lease), so
nothing can slip between the read and the write. The same read finds what a whole-resource
write must keep: identifiers marked `old`, and a merged record's inactive state and link.

Replaying messages after a crash is harmless: the conditional update finds the Patient
created the first time, so there is one Patient per local identifier however often a
message is sent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from engine.delivery.destination import Outcome, Result
from engine.fhir import profiles
from engine.fhir.identifiers import pi_identifier
from engine.fhir.outcomes import judge
from engine.fhir.patient import NoPatientError, PatientOptions, map_patient, previous_identifiers
from engine.fhir.server import Answer, Request, by_identifier
from engine.fhir.settings import FhirSettings
from engine.fhir.validation import problems
from engine.hl7.message import Message, component

SOURCE_EVENT = "urn:ins-engine:fhir:source-event"
OLDER = "older"  # the ACK code of a message not written: the server holds a later event
NOTHING = "none"  # the ACK code of an event the feed has nothing to do for

Send = Callable[[Request], Awaitable[Answer]]
Key = tuple[str, str]  # (system, value) of a local identifier


@dataclass(frozen=True)
class Written:
    """The outcome of one revise: the Patient's id on the server, or why the message stops."""

    patient_id: str | None
    result: Result


class Feed:
    def __init__(self, settings: FhirSettings, options: PatientOptions) -> None:
        self._settings = settings
        self._options = options

    async def apply(self, message: Message, send: Send) -> Result:
        """Make what `message` means on the server through `send`; never raises for an
        answer (a failure is a `Result`), only `send`'s own errors go through."""
        separator = message.separators.component
        msh = message.msh
        event = component(msh.field(9), 2, separator)
        action = self._settings.action(event)
        if action is None:
            return Result(Outcome.DELIVERED, ack_code=NOTHING)
        try:
            mapped = map_patient(message, self._options)
        except NoPatientError:
            return _park("the message has no PID segment")
        key = mapped.local_identifier
        if key is None:
            return _park("PID-3 has no local identifier (CX-5 PI) to key the Patient on")
        stamp = _stamp(_event_time(message), msh.field(10))
        resource = _stamped(mapped.resource, stamp)
        refused = _checked(resource, "the Patient resource")
        if refused is not None:
            return refused
        if action == "remove":
            return await _remove(send, key)
        if action == "update":
            return (await _revise(send, key, resource, stamp)).result
        previous = previous_identifiers(message, self._options, qualified=mapped.ins)
        if action == "merge":
            return await self._merge(send, key, resource, stamp, previous.local)
        return await self._change(send, key, resource, stamp, previous.local, previous.old_ins)

    async def _merge(
        self,
        send: Send,
        key: Key,
        resource: dict[str, Any],
        stamp: dict[str, Any],
        absorbed: Key | None,
    ) -> Result:
        if absorbed is None:
            return _park("MRG-1 has no local identifier (CX-5 PI): the record absorbed is unknown")
        if absorbed == key:
            return _park("MRG-1 names the surviving record itself")
        survivor = await _revise(send, key, resource, stamp)
        if survivor.patient_id is None:
            return survivor.result
        existing, failure = await _current(send, absorbed, "merge search")
        if failure is not None:
            return failure
        body = _retired(existing, absorbed, survivor.patient_id, stamp)
        refused = _checked(body, "the absorbed Patient resource")
        if refused is not None:
            return refused
        answer = await send(Request("PUT", by_identifier(*absorbed), body))
        return judge(answer, "merge") or Result(Outcome.DELIVERED, ack_code=str(answer.status))

    async def _change(
        self,
        send: Send,
        key: Key,
        resource: dict[str, Any],
        stamp: dict[str, Any],
        replaced: Key | None,
        old_ins: list[dict[str, Any]],
    ) -> Result:
        extra = list(old_ins)
        target = key
        if replaced is not None and replaced != key:
            extra.append(pi_identifier(*replaced, use=profiles.OLD_USE))
            before, failure = await _current(send, replaced, "change search")
            if failure is not None:
                return failure
            if before is not None:
                after, failure = await _current(send, key, "change search")
                if failure is not None:
                    return failure
                if after is not None:
                    return _park(
                        "the old and the new local identifier each have a Patient on the "
                        "server: a merge (A40) is needed, not a change of identifier"
                    )
                target = replaced  # the Patient moves to the new identifier
        body = {**resource, "identifier": [*resource.get("identifier", []), *extra]}
        refused = _checked(body, "the Patient resource")
        if refused is not None:
            return refused
        return (await _revise(send, target, body, stamp)).result


async def _revise(send: Send, key: Key, resource: dict[str, Any], stamp: dict[str, Any]) -> Written:
    """The conditional update keyed on `key`, unless the server holds a later event."""
    existing, failure = await _current(send, key, "search")
    if failure is not None:
        return Written(None, failure)
    time = stamp_time(stamp)
    if existing is not None and time and _time_of(existing) > time:
        return Written(existing.get("id"), Result(Outcome.DELIVERED, ack_code=OLDER))
    body = _kept(existing, resource)
    refused = (
        _checked(body, "the Patient with what the server keeps") if body is not resource else None
    )
    if refused is not None:
        return Written(None, refused)
    answer = await send(Request("PUT", by_identifier(*key), body))
    failure = judge(answer, "update")
    if failure is not None:
        return Written(None, failure)
    body = answer.body if isinstance(answer.body, dict) else {}
    patient_id = body.get("id") or _id_in(answer.location) or (existing or {}).get("id")
    return Written(patient_id, Result(Outcome.DELIVERED, ack_code=str(answer.status)))


async def _current(send: Send, key: Key, what: str) -> tuple[dict[str, Any] | None, Result | None]:
    """The server's Patient with this local identifier, None if it has none; or why not."""
    answer = await send(Request("GET", by_identifier(*key)))
    failure = judge(answer, what)
    if failure is not None:
        return None, failure
    entries = answer.body.get("entry", []) if isinstance(answer.body, dict) else []
    patients = [
        entry["resource"]
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") == "Patient"
    ]
    if len(patients) > 1:
        return None, _park(
            f"{what}: {len(patients)} Patient resources have the local identifier: an identity "
            "problem to resolve on the FHIR server"
        )
    return (patients[0] if patients else None), None


async def _remove(send: Send, key: Key) -> Result:
    answer = await send(Request("DELETE", by_identifier(*key)))
    if answer.status == 404:  # already gone: what a removal asks for
        return Result(Outcome.DELIVERED, ack_code="404")
    return judge(answer, "removal") or Result(Outcome.DELIVERED, ack_code=str(answer.status))


def _kept(existing: dict[str, Any] | None, resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` with what the server's copy holds that the message does not carry: the
    identifiers marked `old`, and a merged record's inactive state and `replaced-by` link.
    An old INS is kept only beside a current one: an INS, even a superseded one, travels
    only with a qualified identity, so a Patient whose identity is no longer qualified
    loses it (`resource` itself is returned when nothing is kept)."""
    if existing is None:
        return resource
    kept = dict(resource)
    identifiers = resource.get("identifier", [])
    present = {_identity(identifier) for identifier in identifiers}
    qualified = any(is_ins(i) and i.get("use") != profiles.OLD_USE for i in identifiers)
    old = [
        identifier
        for identifier in existing.get("identifier", [])
        if isinstance(identifier, dict)
        and identifier.get("use") == profiles.OLD_USE
        and _identity(identifier) not in present
        and (qualified or not is_ins(identifier))
    ]
    if old:
        kept["identifier"] = [*resource.get("identifier", []), *old]
    links = [link for link in existing.get("link", []) if link.get("type") == "replaced-by"]
    if existing.get("active") is False and links:
        kept["active"] = False
        kept["link"] = links
    return kept if kept != resource else resource


def is_ins(identifier: Any) -> bool:
    """An INS identifier, current or old: typed INS-*, or under an INS OID and not typed as
    the billing NIR (what is unclear counts as an INS)."""
    if not isinstance(identifier, dict):
        return False
    code = _identity(identifier)[2]
    if code in profiles.INS_TYPES.values():
        return True
    return identifier.get("system") in profiles.INS_SYSTEMS and code != profiles.BILLING_NIR_TYPE


def _retired(
    existing: dict[str, Any] | None, key: Key, survivor_id: str, stamp: dict[str, Any]
) -> dict[str, Any]:
    """The absorbed record: the server's copy (or a record holding only its identifier),
    inactive, replaced by the survivor."""
    if existing is None:
        body: dict[str, Any] = {
            "resourceType": "Patient",
            "meta": {"profile": [profiles.pinned(profiles.PATIENT_PROFILE)]},
            "identifier": [pi_identifier(*key)],
        }
    else:
        body = {name: value for name, value in existing.items() if name not in ("id", "meta")}
        claimed = (existing.get("meta") or {}).get("profile")
        if claimed:
            body["meta"] = {"profile": claimed}
    body["active"] = False
    body["link"] = [{"other": {"reference": f"Patient/{survivor_id}"}, "type": "replaced-by"}]
    return _stamped(body, stamp)


def _identity(identifier: Any) -> tuple[str, str, str]:
    if not isinstance(identifier, dict):
        return ("", "", "")
    codings = (identifier.get("type") or {}).get("coding") or [{}]
    return (identifier.get("system", ""), identifier.get("value", ""), codings[0].get("code", ""))


def _stamp(time: str, control_id: str) -> dict[str, Any]:
    return {
        "url": SOURCE_EVENT,
        "extension": [
            {"url": "time", "valueString": time},
            {"url": "message", "valueString": control_id},
        ],
    }


def _stamped(resource: dict[str, Any], stamp: dict[str, Any]) -> dict[str, Any]:
    """`resource` with `stamp` as its only source-event extension."""
    others = [
        extension
        for extension in resource.get("extension", [])
        if not (isinstance(extension, dict) and extension.get("url") == SOURCE_EVENT)
    ]
    return {**resource, "extension": [*others, stamp]}


def stamp_time(stamp: dict[str, Any]) -> str:
    for part in stamp.get("extension", []):
        if isinstance(part, dict) and part.get("url") == "time":
            value = part.get("valueString")
            return value if isinstance(value, str) else ""
    return ""


def _time_of(resource: dict[str, Any]) -> str:
    """The event time a server's Patient was written from ("" when not written by a feed)."""
    for extension in resource.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == SOURCE_EVENT:
            return stamp_time(extension)
    return ""


_TIME = re.compile(r"(\d{4,14})(\.\d{1,4})?")


def _event_time(message: Message) -> str:
    """EVN-2 (else MSH-7) as `YYYYMMDDHHMMSS.ffff`, so that two compare as strings. The
    offset is left out: one sender writes its times in one zone."""
    evn = message.segment("EVN")
    separator = message.separators.component
    for text in (evn.field(2) if evn else "", message.msh.field(7)):
        match = _TIME.match(component(text, 1, separator))
        if match:
            seconds = match.group(1).ljust(14, "0")
            fraction = (match.group(2) or ".").ljust(5, "0")
            return seconds + fraction
    return ""


def _id_in(location: str) -> str | None:
    """The id in a Location header (`.../Patient/<id>/_history/<version>`)."""
    parts = location.split("/")
    if "Patient" in parts and parts.index("Patient") + 1 < len(parts):
        return parts[parts.index("Patient") + 1]
    return None


def _checked(resource: dict[str, Any], what: str) -> Result | None:
    """None when `resource` passes the checks; else the parked result naming what failed."""
    found = problems(resource)
    return _park(f"{what} fails its checks: " + "; ".join(found)) if found else None


def _park(reason: str) -> Result:
    return Result(Outcome.PARK, error=reason)
