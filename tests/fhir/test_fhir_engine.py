"""The samples through a running engine into a real FHIR server: one Patient per local
identifier even after a kill -9 mid-stream and a replay of everything, merges visible as
`replaced-by`, and an INS only on a qualified identity."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from engine.fhir import profiles
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.message import Message, component
from engine.mllp.client import MllpClient
from engine.tools.replay.reader import read_messages
from tests.support.cli import run_beside
from tests.support.engine_process import EngineProcess
from tests.support.fhir_proxy import FaultProxy
from tests.support.fhir_server import FhirServer
from tests.support.waiting import until

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"
FED = ["A28", "A31", "A01", "A04", "A05", "A08", "A40", "A47"]


def samples() -> list[bytes]:
    payloads = []
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix in (".hl7", ".mllp"):
            payloads += [m.payload for m in read_messages(path.read_bytes()).messages]
    return payloads


def local_ids(payload: bytes) -> tuple[str, set[str], set[str]]:
    """The message's event, the local identifiers (PI) of its PID and those of its MRG-1."""
    message = Message.parse(decode(payload, CharsetPolicy()).text)
    separator = message.separators.component
    event = component(message.msh.field(9), 2, separator)
    found: list[set[str]] = []
    for name, field in (("PID", 3), ("MRG", 1)):
        segment = message.segment(name)
        repetitions = segment.repetitions(field) if segment else []
        found.append(
            {
                component(cx, 1, separator)
                for cx in repetitions
                if component(cx, 5, separator) == "PI"
            }
        )
    return event, found[0], found[1]


def config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "engine.toml"
    events = ", ".join(f'"ADT^{event}"' for event in FED)
    path.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\nlog_format = "json"\n\n'
        "[insi]\nsimulator = true\n\n"
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = true\n\n'
        f'[[routes.destinations]]\nname = "eds"\naccept = [{events}]\nbackoff_base_s = 0.05\n'
        "backoff_cap_s = 0.2\n"
        f'[routes.destinations.fhir]\nbase_url = "{base_url}"\n'
        'update_events = ["A28", "A31", "A01", "A04", "A05", "A08"]\n',
        encoding="utf-8",
    )
    return path


def queue(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    return dict(rows)


async def send_all(engine: EngineProcess, payloads: list[bytes]) -> list[bytes]:
    client = await MllpClient.connect(*engine.address("adt"))
    try:
        return [await client.exchange(payload, 30) for payload in payloads]
    finally:
        await client.close()


def by_local_id(patients: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for patient in patients:
        for identifier in patient["identifier"]:
            if identifier["type"]["coding"][0]["code"] == "PI" and identifier["use"] == "usual":
                found.setdefault(identifier["value"], []).append(patient)
    return found


def status_of(patient: dict[str, Any]) -> str | None:
    for extension in patient.get("extension", []):
        if extension["url"] == profiles.IDENTITY_RELIABILITY:
            for part in extension["extension"]:
                if part["url"] == profiles.IDENTITY_STATUS:
                    return str(part["valueCoding"]["code"])
    return None


async def test_samples_make_one_patient_per_local_identifier_through_a_crash_and_a_replay(
    tmp_path: Path, fhir_proxy: FaultProxy, fhir_server: FhirServer
) -> None:
    payloads = samples()
    fed = [local_ids(p) for p in payloads if local_ids(p)[0] in FED]
    # Each PI gets a Patient, but one an A47 replaced lives on as an old identifier.
    named = set().union(*(pid | mrg for _, pid, mrg in fed))
    moved = {old: new for event, pid, mrg in fed if event == "A47" for old in mrg for new in pid}
    expected = named - set(moved)
    engine = EngineProcess(config(tmp_path, fhir_proxy.base_url))
    await engine.start()
    fhir_proxy.drop_next(after_upstream=True)  # one write applied, its answer lost: sent again
    half = len(payloads) // 2
    acks = await send_all(engine, payloads[:half])
    engine.kill()  # mid-stream: entries routed, some sent, some marks not committed
    assert all(b"MSA|AA|" in ack or b"MSA|AE|" in ack for ack in acks)
    await engine.start()
    await send_all(engine, payloads)  # everything again: the first half answered as duplicates
    database = tmp_path / "engine.db"
    await until(lambda: queue(database).get("pending", 0) == 0, timeout_s=120)
    assert await engine.terminate() == 0
    assert queue(database).get("parked", 0) == 0, engine.logged("message parked")
    shown = await run_beside("queue", "status", "--json", "--config", str(engine.config))
    assert shown.status == 0, shown.err
    (eds,) = json.loads(shown.out)["queues"]
    assert (eds["route"], eds["destination"], eds["pending"], eds["parked"]) == ("adt", "eds", 0, 0)

    patients = fhir_server.patients()
    grouped = by_local_id(patients)
    assert set(grouped) == expected
    assert {pi: len(found) for pi, found in grouped.items() if len(found) > 1} == {}
    assert len(patients) == len(expected)
    for old, new in moved.items():
        (patient,) = grouped[new]
        assert any(i["value"] == old and i.get("use") == "old" for i in patient["identifier"])
    ids = {patient["id"]: patient for patient in patients}
    retired = [patient for patient in patients if patient.get("active") is False]
    assert retired  # the samples' merges
    for patient in retired:
        (link,) = patient["link"]
        assert link["type"] == "replaced-by"
        assert ids[link["other"]["reference"].removeprefix("Patient/")].get("active") is not False
    for patient in patients:
        current_ins = [
            identifier
            for identifier in patient["identifier"]
            if identifier["type"]["coding"][0]["code"].startswith("INS-")
            and identifier.get("use") != "old"
        ]
        claims_ins = profiles.pinned(profiles.PATIENT_INS_PROFILE) in patient["meta"]["profile"]
        assert bool(current_ins) == claims_ins
        if current_ins:
            assert status_of(patient) == "VALI"
    ins_profile = profiles.pinned(profiles.PATIENT_INS_PROFILE)
    claimed = [p for p in patients if ins_profile in p["meta"]["profile"]]
    assert 0 < len(claimed) < len(patients)  # the samples hold both kinds of identity
