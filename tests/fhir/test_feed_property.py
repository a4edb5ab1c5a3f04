"""The INS invariant at the feed, over generated messages and generated server copies: what
the server already holds (old INS, a current INS, the billing NIR) never brings an INS into
a write for an identity that is not qualified, and every write passes the checks."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.fhir import profiles
from engine.fhir.feed import Feed, is_ins
from engine.fhir.patient import PatientOptions, map_patient
from engine.fhir.server import Answer, Request
from engine.fhir.settings import FhirSettings
from engine.fhir.validation import problems
from engine.hl7.message import Message
from tests.fhir.generated import OID, PERSONS, SETTINGS, messages

LOCAL = {"system": "urn:oid:1.2.250.1.999.1.1", "value": "800001"}
PI = {"coding": [{"system": profiles.V2_0203, "code": "PI"}]}


@st.composite
def server_identifiers(draw: st.DrawFn) -> dict[str, Any]:
    """One identifier a server's Patient may hold: an INS of any slice, current or old,
    typed or not, or the billing NIR under the INS-NIR's OID."""
    matricule = draw(st.sampled_from([person[4] for person in PERSONS]))
    ending = draw(st.sampled_from(["8", "9", "10", "11"]))
    code = draw(st.sampled_from(["INS-NIR", "INS-NIA", "INS-NIR-TEST", "NH", None]))
    identifier: dict[str, Any] = {
        "use": draw(st.sampled_from(["old", "old", "official", "usual"])),
        "system": f"urn:oid:{OID}{ending}",
        "value": matricule,
    }
    if code is not None:
        system = profiles.V2_0203 if code == "NH" else profiles.FR_V2_0203
        identifier["type"] = {"coding": [{"system": system, "code": code}]}
    return identifier


copies = st.one_of(
    st.none(),
    st.lists(server_identifiers(), max_size=4).map(
        lambda extra: {
            "resourceType": "Patient",
            "id": "1",
            "identifier": [{"use": "usual", "type": PI, **LOCAL}, *extra],
        }
    ),
)


def writes(message: Any, options: Any, existing: dict[str, Any] | None) -> list[Request]:
    """The feed's writes for `message` on a server holding `existing` under PI 800001."""
    sent: list[Request] = []

    async def send(request: Request) -> Answer:
        sent.append(request)
        if request.method == "GET":
            found = existing if existing is not None and "800001" in request.url else None
            return Answer(
                200,
                {"resourceType": "Bundle", "entry": [{"resource": found}]}
                if found
                else {"resourceType": "Bundle"},
            )
        return Answer(201, {**(request.body or {}), "id": "2"})

    settings = FhirSettings("http://fhir.invalid/R4", local_system=LOCAL["system"])
    asyncio.run(Feed(settings, options).apply(message, send))
    return [request for request in sent if request.method == "PUT"]


@SETTINGS
@given(messages(), copies)
def test_an_ins_is_written_only_for_a_qualified_identity(case: Any, existing: Any) -> None:
    message, options = case
    qualified = map_patient(message, options).ins
    for write in writes(message, options, existing):
        assert write.body is not None
        written = [i for i in write.body.get("identifier", []) if is_ins(i)]
        assert qualified or not written, write.body["identifier"]
        assert problems(write.body) == []


def test_an_identity_no_longer_qualified_is_written_without_its_old_ins() -> None:
    """The Patient is still revised (not parked): only the superseded INS is left out."""
    pid = (
        "PID|||800001^^^CHU&1.2.250.1.999.1.1&ISO^PI||ADRUN^ZOE^ZOE^^^^L||19751231|F|||"
        "^^^^^FRA^BDL^^63220" + "|" * 21 + "PROV"
    )
    message = Message.parse(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A31|1|P|2.5\r{pid}")
    old_ins = {
        "use": "old",
        "type": {"coding": [{"system": profiles.FR_V2_0203, "code": "INS-NIR"}]},
        "system": f"urn:oid:{OID}8",
        "value": PERSONS[0][4],
    }
    existing = {
        "resourceType": "Patient",
        "id": "1",
        "identifier": [{"use": "usual", "type": PI, **LOCAL}, old_ins],
    }
    (write,) = writes(message, PatientOptions(), existing)
    assert write.body is not None
    assert write.body["identifier"] == [{"use": "usual", "type": PI, **LOCAL}]
