"""Issue #5 end to end: a feed goes through the running engine (listener, store, router,
enrichment with the in-process INSi simulator, MLLP delivery) to a recording receiver, and
`ins-engine report identities` then lists what the identity-vigilance team must look at.

Done when a VALI ADT for a test person leaves with exactly the right PID-3 repetition and
traits, a PROV one leaves without INS, everything else is untouched, and the report shows
every outcome. The route searches provisional identities too, so the PROV one (a test
person INSi knows) is récupérée: its INS is reported for a document check, never sent.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from engine.app.runtime import Engine
from engine.enrich.pid_writer import zfd_time
from engine.mllp.client import MllpClient
from engine.testing.receiver import Receiver
from tests.support.engine_process import REPOSITORY

pytestmark = pytest.mark.system

MSH = (
    "MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101120000||ADT^{event}|{control_id}|P|2.5^FRA^2.11"
    "|||||FRA|8859/1|||2.11^IHE_FRANCE-2.11-PAM"
)
INS = "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"


def message(control_id: str, event: str, *segments: str) -> bytes:
    header = MSH.format(event=event, control_id=control_id)
    return "\r".join([header, "EVN||20240101120000", *segments, ""]).encode("latin-1")


def pid(identifiers: str, name: str, birth: str, sex: str, place: str, status: str) -> str:
    birth_place = f"^^^^^FRA^BDL^^{place}" if place else ""
    return f"PID|1||{identifiers}||{name}||{birth}|{sex}|||{birth_place}" + "|" * 21 + status


# VALI, validated against an ID card (ZFD-7 CN); XPN-3 (all first names) left empty.
VALI = message(
    "E2E001",
    "A28^ADT_A05",
    pid("IPP001^^^HOSP^PI", "ADRTROIS^DOMINIQUE^^^Mme^^L", "19970226", "F", "2A020", "VALI"),
    "PV1|1|N",
    "ZFD|||N|N|SM||CN",
)
PROV = message(
    "E2E002",
    "A28^ADT_A05",
    pid(
        "IPP002^^^HOSP^PI", "ADRTROIS^TOUSSAINT^TOUSSAINT^^M.^^L", "19600101", "M", "2B020", "PROV"
    ),
    "PV1|1|N",
)
A47 = message(
    "E2E003",
    "A47^ADT_A30",
    pid(
        f"IPP003^^^HOSP^PI~{INS}", "ADRTROIS^DOMINIQUE^DOMINIQUE^^^^L", "19970226", "F", "", "VALI"
    ),
    "MRG|160012B02077713^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS",
)
SEVERAL = message(
    "E2E004",
    "A28^ADT_A05",
    pid("IPP004^^^HOSP^PI", "DE VINCI^LEONARDO^LEONARDO^^^^L", "20140201", "M", "", "VALI"),
    "PV1|1|N",
)
NONE = message(
    "E2E005",
    "A04^ADT_A01",
    pid(
        "IPP005^^^HOSP^PI", "HOUILLES^PIERRE^PIERRE PAUL JACQUES^^^^L", "19930127", "M", "", "VALI"
    ),
    "PV1|1|O",
)
FEED = [VALI, PROV, A47, SEVERAL, NONE]
PATIENT_DATA = ("ADRTROIS", "DOMINIQUE", "VINCI", "HOUILLES", "2970", "1600", "IPP00")


def enriched_vali(called_at: dt.datetime) -> bytes:
    """VALI as it must leave: the INS appended to PID-3, INSi's first names in XPN-3,
    ZFD-5 = INSI and ZFD-6 = the INSi call time; every other byte as received."""
    return message(
        "E2E001",
        "A28^ADT_A05",
        pid(
            f"IPP001^^^HOSP^PI~{INS}",
            "ADRTROIS^DOMINIQUE^DOMINIQUE^^Mme^^L",
            "19970226",
            "F",
            "2A020",
            "VALI",
        ),
        "PV1|1|N",
        f"ZFD|||N|N|INSI|{zfd_time(called_at)}|CN",
    )


async def send(engine: Engine, payloads: list[bytes]) -> list[bytes]:
    host, port = engine.listeners["adt"].address
    client = await MllpClient.connect(host, port)
    try:
        return [await client.exchange(payload, 5) for payload in payloads]
    finally:
        await client.close()


def stored_called_at(database: Path, control_id: str) -> dt.datetime:
    with sqlite3.connect(database) as db:
        (record,) = db.execute(
            """SELECT i.record FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
               WHERE m.control_id = ?""",
            (control_id,),
        ).fetchone()
    return dt.datetime.fromisoformat(json.loads(record)["called_at"])


async def ins_engine(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine",
        *args,
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_feed_leaves_enriched_in_order_and_the_report_lists_what_needs_action(
    start_engine, tmp_path: Path
) -> None:
    async with Receiver() as downstream:
        engine = await start_engine(
            "[routes.enrichment]\nsearch_provisional = true\n"
            f'[[routes.destinations]]\nname = "downstream"\nmllp = "{downstream.address}"\n',
            enrich=True,
        )
        acks = await send(engine, FEED)
        await downstream.wait_for(len(FEED), timeout_s=30)

    assert all(b"MSA|AA|" in ack for ack in acks)
    called_at = stored_called_at(tmp_path / "engine.db", "E2E001")
    assert [received.payload for received in downstream.received] == [
        enriched_vali(called_at),
        PROV,
        A47,
        SEVERAL,
        NONE,
    ]

    config = engine.config.source
    report = tmp_path / "identities.csv"
    status, out, err = await ins_engine(
        "report", "identities", "--config", config, "--out", str(report)
    )
    assert status == 0, err
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    with report.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["control_id"], row["outcome"], row["detail"]) for row in rows] == [
        ("E2E002", "recuperee", ""),
        ("E2E004", "several_found", "02"),
        ("E2E005", "not_found", "01"),
    ]
    assert [(row["local_id"], row["birth_name"], row["first_names"]) for row in rows] == [
        ("IPP002", "ADRTROIS", "TOUSSAINT"),
        ("IPP004", "DE VINCI", "LEONARDO"),
        ("IPP005", "HOUILLES", "PIERRE PAUL JACQUES"),
    ]
    assert [(row["ins_matricule"], row["ins_oid"]) for row in rows] == [
        ("160012B02077713", "1.2.250.1.213.1.4.8"),
        ("", ""),
        ("", ""),
    ]
    assert all(row["simulated"] == "True" for row in rows)
    assert all(f"{outcome} " in out for outcome in ("recuperee", "several_found", "not_found"))
    assert not any(data in out + err for data in PATIENT_DATA)

    everything = tmp_path / "identities.json"
    status, out, err = await ins_engine(
        "report",
        "identities",
        "--config",
        config,
        "--out",
        str(everything),
        "--all",
        "--format",
        "json",
        "--since",
        "1d",
    )
    assert status == 0, err
    rows = json.loads(everything.read_text("utf-8"))
    assert [(row["control_id"], row["outcome"]) for row in rows] == [
        ("E2E001", "added"),
        ("E2E002", "recuperee"),
        ("E2E003", "not_applicable"),
        ("E2E004", "several_found"),
        ("E2E005", "not_found"),
    ]
    assert rows[0]["ins_matricule"] == ""  # an added INS is in the message, not the report
    assert not any(data in out + err for data in PATIENT_DATA)
