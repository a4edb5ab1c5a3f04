"""The test doubles of engine/testing, offered to plug-in authors: the scripted INSi answers
in script order then as the simulator does; the package ships them without the engine
importing them and without pytest."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.ins.client import InsiClient
from engine.ins.outcome import SearchStatus
from engine.ins.service import InsiService
from engine.ins.settings import InsiSettings
from engine.ins.simulator.dataset import public_test_persons
from engine.ins.traits import IdentityTraits
from engine.testing.clock import ManualClock
from engine.testing.insi import NOT_FOUND, OUTAGE, found, scripted_insi, several
from tests.ins.conftest import CALLER

ENGINE = Path(__file__).resolve().parents[1] / "engine"
IMPORTS_DOUBLES = re.compile(r"^\s*(from|import)\s+engine\.testing\b", re.MULTILINE)
DOMINIQUE = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26))


async def test_the_scripted_insi_answers_its_script_in_order_then_searches() -> None:
    someone, another = [p for p in public_test_persons() if p.birth_name != DOMINIQUE.birth_name][
        :2
    ]
    script = (found(someone), NOT_FOUND, several(someone, another), OUTAGE)
    async with scripted_insi(*script) as (insi, server):
        settings = InsiSettings(url=server.url, retries=0, cache_ttl_s=0.0)
        client = InsiClient(httpx.AsyncClient(trust_env=False), server.url, CALLER, 5.0)
        service = InsiService(client, settings, simulated=True, monotonic=ManualClock())
        try:
            outcomes = [await service.search(DOMINIQUE) for _ in range(5)]
        finally:
            await service.aclose()
    assert [outcome.status for outcome in outcomes] == [
        SearchStatus.FOUND,
        SearchStatus.NOT_FOUND,
        SearchStatus.SEVERAL,
        SearchStatus.UNAVAILABLE,
        SearchStatus.FOUND,  # the script used up: Dominique, as the simulator knows her
    ]
    assert outcomes[0].ins == someone.ins and outcomes[4].ins != someone.ins
    assert insi.requests == 5


def test_the_engine_never_imports_its_test_doubles() -> None:
    importers = [
        str(path.relative_to(ENGINE))
        for path in ENGINE.rglob("*.py")
        if "testing" not in path.relative_to(ENGINE).parts
        and IMPORTS_DOUBLES.search(path.read_text(encoding="utf-8"))
    ]
    assert importers == []


@pytest.mark.system  # a Python process of its own: this one has pytest loaded
def test_the_test_doubles_do_not_import_pytest() -> None:
    check = (
        "import sys, engine.testing.clock, engine.testing.insi, engine.testing.receiver; "
        "sys.exit('pytest' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", check], cwd=ENGINE.parent, check=True, timeout=60)
