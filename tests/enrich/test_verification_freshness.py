"""A carried INS is verified against a recent INSi answer, even across a restart.

INSi's answer for a person changes: the NIA it gave moves to its history when the NIR
arrives. The store's cache survives a restart, so an engine restarted on the same store
must not verify the old NIA from a cached answer older than `verify_max_age_s`; a search
for an identity without INS may still use the cache (`cache_ttl_s`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.app.runtime import Engine
from engine.config.settings import load_config
from engine.ins.simulator.dataset import public_test_persons
from engine.testing.receiver import Receiver
from tests.conftest import fixed_acks
from tests.enrich.test_cases import CASES_DIR
from tests.test_end_to_end import message, pid, send

pytestmark = pytest.mark.system

NIA = "109076322088835^^^ASIP-SANTE-INS-NIA&1.2.250.1.213.1.4.9&ISO^INS"
PROVISOIRE = ("PROVISOIRE^MATRICULE^MATRICULE^^^^L", "20090701", "M", "63220", "VALI")


def a28(control_id: str) -> bytes:
    return message(control_id, "A28^ADT_A05", pid("IPP7^^^HOSP^PI", *PROVISOIRE), "PV1|1|N")


def a31_with_nia(control_id: str) -> bytes:
    return message(control_id, "A31^ADT_A05", pid(f"IPP7^^^HOSP^PI~{NIA}", *PROVISOIRE))


def recorded(database: Path) -> dict[str, tuple[str, str, int]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT m.control_id, i.record FROM identity_outcomes i"
            " JOIN messages m ON m.id = i.message_id"
        ).fetchall()
    return {
        control_id: (record["outcome"], record["detail"], record["calls"])
        for control_id, record in ((c, json.loads(r)) for c, r in rows)
    }


def write_config(folder: Path, downstream: str) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\n\n'
        f'[insi]\nsimulator = true\nsimulator_persons = "{folder / "persons.json"}"\n'
        "cache_ttl_s = 86400\nverify_max_age_s = 0\n\n"  # any cached answer is too old
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        f'[[routes.destinations]]\nname = "downstream"\nmllp = "{downstream}"\n'
    )
    return config


async def run_engine(folder: Path, *payloads: bytes) -> None:
    async with Receiver() as downstream:
        engine = Engine(load_config(write_config(folder, downstream.address)), acks=fixed_acks())
        await engine.start()
        try:
            acks = await send(engine, list(payloads))
            assert all(b"MSA|AA|" in ack for ack in acks)
            await downstream.wait_for(len(payloads), timeout_s=30)
        finally:
            await engine.stop()


async def test_a_restarted_engine_does_not_verify_from_a_stale_cached_answer(
    tmp_path: Path,
) -> None:
    persons = tmp_path / "persons.json"
    persons.write_text(
        json.dumps(
            {
                "persons": [
                    p.to_json() for p in public_test_persons() if p.birth_name == "PROVISOIRE"
                ]
            }
        )
    )
    await run_engine(tmp_path, a28("F1"))  # the NIA is found and cached in the store

    # INSi now answers the NIR and lists the NIA in its history.
    shutil.copy(CASES_DIR / "persons" / "nia_now_nir.json", persons)
    await run_engine(tmp_path, a28("F2"), a31_with_nia("F3"))

    assert recorded(tmp_path / "engine.db") == {
        "F1": ("added", "", 1),
        "F2": ("added", "", 0),  # a search may use the day-long cache
        "F3": ("incoherent", "ins_in_history", 1),  # a verification asks INSi again
    }
