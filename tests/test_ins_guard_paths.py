"""The outbound INS guard on every path a message can leave by: the running engine (MLLP in,
SQLite store, file destination), `ins-engine replay` into it, `ins-engine enrich`, route
tests (`ins-engine test`) and `POST /api/v1/enrich`.

Each path gets the same four messages, which the engine used to forward byte for byte on a
route without enrichment (and, but for the A03, on one with it): an ORU whose PID-32 is
empty, an A40 whose identity is fictive, an A17 whose second PID is provisional and an A03
with two different INS. Each must come out with exactly its unqualified INS repetitions
gone and every other byte as received; where the path shows decisions, the guard's says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.cli import main
from engine.embed import RouteRunner
from engine.enrich.guard_settings import GUARD_OFF_WARNING
from engine.enrich.outcome import NEEDS_ACTION
from engine.enrich.reviews import work_list
from engine.store.base import MessageQuery
from tests.conftest import StartEngine
from tests.delivery.harness import eventually
from tests.http.test_enrich_api import HTTP, TOKEN, post
from tests.test_end_to_end import INS as KEPT_INS
from tests.test_end_to_end import ins_engine, pid, send

NIR = "^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
ZOE = f"275126322074974{NIR}"  # ADRUN Zoé's INS: valid key, canonical
CORSICA = f"180032B020401 23{NIR}"  # another person's valid INS, written with a space
MATRICULES = (b"275126322074974", b"180032B020401", b"180032B02040123")
ZOE_PID = ("ADRUN^ZOE^ZOE^^Mme^^L", "19751231", "F", "63220")


def hl7(control_id: str, message_type: str, *segments: str) -> bytes:
    msh = (
        f"MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101120000||{message_type}|{control_id}|P"
        "|2.5^FRA^2.11|||||FRA|8859/1"
    )
    return "\r".join([msh, *segments, ""]).encode("latin-1")


EVN = "EVN||20240101120000"
ORU = hl7(
    "GRD001",
    "ORU^R01^ORU_R01",
    pid(f"IPP101^^^HOSP^PI~{ZOE}", *ZOE_PID, ""),
    "OBR|1||LAB101|GLU^Glucose",
    "OBX|1|NM|GLU^Glucose||5.2|mmol/L|||||F",
)
A40 = hl7(
    "GRD002",
    "ADT^A40^ADT_A39",
    EVN,
    pid(f"IPP102^^^HOSP^PI~{ZOE}", *ZOE_PID, "VALI~FICT"),
    f"MRG|IPP099^^^HOSP^PI~{KEPT_INS}",
)
A17 = hl7(
    "GRD003",
    "ADT^A17^ADT_A17",
    EVN,
    pid(f"IPP103^^^HOSP^PI~{KEPT_INS}", "ADRTROIS^DOMINIQUE^^^Mme^^L", "19970226", "F", "", "VALI"),
    "PV1|1|I|CARDIO^101^1",
    pid(f"IPP104^^^HOSP^PI~{ZOE}", *ZOE_PID, "PROV"),
    "PV1|1|I|CARDIO^102^1",
)
A03 = hl7(
    "GRD004",
    "ADT^A03^ADT_A03",
    EVN,
    pid(f"IPP105^^^HOSP^PI~{ZOE}~{CORSICA}", *ZOE_PID, "VALI"),
    "PV1|1|I",
)
# (message, what must leave, the guard's reason): only the unqualified INS repetitions go;
# the A40's MRG and the A17's first PID (a VALI identity with its INS) leave as received.
CASES = {
    "GRD001": (ORU, ORU.replace(f"~{ZOE}".encode(), b""), "ins_without_vali"),
    "GRD002": (A40, A40.replace(f"~{ZOE}".encode(), b""), "fictive_or_doubtful"),
    "GRD003": (A17, A17.replace(f"~{ZOE}".encode(), b""), "ins_without_vali"),
    "GRD004": (A03, A03.replace(f"~{ZOE}~{CORSICA}".encode(), b""), "several_ins"),
}
FEED = [message for message, _, _ in CASES.values()]
ENRICH = '[[routes.steps]]\nkind = "ins_enrich"\nname = "ins"\n'
NO_STEPS = "enrich = false\n"


def route_keys(archive: Path, steps: str = "") -> str:
    """A route taking any message type to a file destination, with `steps` (none: a
    forwarding route such as a lab feed's)."""
    return (
        f'accept = ["*"]\n\n{steps}\n[[routes.destinations]]\nname = "archive"\n'
        f'file = "{archive}"\naccept = ["ADT^*", "ORU^*"]\n'
    )


def write_config(folder: Path, steps: str = NO_STEPS) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\n\n[insi]\nsimulator = true\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        + route_keys(folder / "archive", steps),
        encoding="utf-8",
    )
    return config


def write_messages(folder: Path) -> Path:
    """One file per message, named after its control id (replay sends them in that order)."""
    folder.mkdir()
    for control_id, (message, _, _) in CASES.items():
        (folder / f"{control_id}.hl7").write_bytes(message)
    return folder


def assert_guarded(outputs: dict[str, bytes]) -> None:
    """Every message left with exactly its unqualified INS removed, nothing else changed."""
    assert outputs == {control_id: expected for control_id, (_, expected, _) in CASES.items()}
    for control_id, output in outputs.items():
        assert not [m for m in MATRICULES if m in output], control_id
    assert KEPT_INS.encode() in outputs["GRD002"].split(b"\r")[3], "MRG untouched"
    assert KEPT_INS.encode() in outputs["GRD003"].split(b"\r")[2], "the VALI PID keeps its INS"


def written(folder: Path) -> dict[str, bytes]:
    """The message files in `folder` by control id (a file destination names them
    `<entry id>-<control id>.hl7`, `ins-engine enrich` after their input file)."""
    return {path.stem.split("-", 1)[-1]: path.read_bytes() for path in folder.glob("*.hl7")}


async def archived(engine: Engine, archive: Path) -> dict[str, bytes]:
    """What the file destination wrote, once every message is there; and the guard's
    decision on each stored message is the one expected."""

    async def all_written() -> bool:
        return len(written(archive)) == len(CASES)

    await eventually(all_written)
    store = engine.store
    assert store is not None
    for control_id, (_, _, reason) in CASES.items():
        [stored] = await store.find_messages(MessageQuery(control_id=control_id))
        guard = [d for d in await store.decisions(stored.message_id) if d.kind == "ins_guard"]
        assert [(d.step, d.outcome, d.detail, d.destination) for d in guard] == [
            ("ins_guard", "removed", reason, "")
        ], control_id
    return written(archive)


async def test_live_engine_over_mllp_delivers_no_unqualified_ins(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    engine = await start_engine(route_keys(archive), enrich=False)
    acks = await send(engine, FEED)
    assert all(b"MSA|AA|" in ack for ack in acks)
    assert_guarded(await archived(engine, archive))
    exposition = engine.metrics.exposition().decode()
    for reason in ("ins_without_vali", "fictive_or_doubtful", "several_ins"):
        assert f'reason="{reason}"' in exposition
    # Each removal a person must look at is on the identity work list, for the vigilance role.
    assert engine.store is not None
    rows = await work_list(engine.store, NEEDS_ACTION, handled=False)
    assert sorted((row.identity.control_id, row.identity.record["detail"]) for row in rows) == [
        (control_id, reason) for control_id, (_, _, reason) in sorted(CASES.items())
    ]


@pytest.mark.system
async def test_replay_into_the_live_engine_delivers_no_unqualified_ins(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    engine = await start_engine(route_keys(archive), enrich=False)
    host, port = engine.listeners["adt"].address
    folder = write_messages(tmp_path / "in")
    status, out, err = await ins_engine("replay", str(folder), "--to", f"{host}:{port}", "--json")
    assert status == 0, err
    assert json.loads(out)["sent"] == len(CASES)
    assert_guarded(await archived(engine, archive))


def test_offline_enrich_writes_no_unqualified_ins(tmp_path: Path) -> None:
    """An enriching route (`ins-engine enrich` wants one): the enrichment passes the ORU, the
    A40 and the A17 through (not its events, not a single PID), the guard cleans them; the
    A03's two INS the enrichment already removed."""
    config = write_config(tmp_path, ENRICH)
    folder, out = write_messages(tmp_path / "in"), tmp_path / "out"
    report = tmp_path / "report.json"
    command = ["enrich", "--config", str(config), str(folder), "--out", str(out)]
    assert main([*command, "--report", str(report), "--format", "json"]) == 0
    assert_guarded(written(out))
    assert not (tmp_path / "engine.db").exists()  # offline: no store
    # The report lists what the guard removed, as the engine's work list does.
    rows = {row["control_id"]: row for row in json.loads(report.read_text("utf-8"))}
    assert {control_id: rows[control_id]["detail"] for control_id in rows} == {
        "GRD001": "ins_without_vali",
        "GRD002": "fictive_or_doubtful",
        "GRD003": "ins_without_vali",
        "GRD004": "several_ins",
    }


def test_route_tests_expect_the_ins_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    cases = tmp_path / "tests" / "adt"
    for control_id, (message, expected, reason) in CASES.items():
        case = cases / control_id
        case.mkdir(parents=True)
        (case / "in.hl7").write_bytes(message)
        (case / "out.archive.hl7").write_bytes(expected)
        (case / "case.toml").write_text(
            f'decisions = ["ins_guard removed {reason}"]\n', encoding="utf-8"
        )
    kept = cases / "ins_kept"  # a case written for the old behaviour: the INS left as received
    kept.mkdir()
    (kept / "in.hl7").write_bytes(ORU)
    (kept / "out.archive.hl7").write_bytes(ORU)

    assert main(["test", "--config", str(config)]) == 1
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert [line for line in lines if line.startswith(("ok", "FAIL"))] == [
        "ok   adt/GRD001",
        "ok   adt/GRD002",
        "ok   adt/GRD003",
        "ok   adt/GRD004",
        "FAIL adt/ins_kept",
    ]
    [failure] = lines[lines.index("FAIL adt/ins_kept") + 1 : -1]  # the INS it expected is gone
    assert failure.startswith('archive: PID-3: expected "IPP101^^^HOSP^PI~275126322074974^^^')
    assert failure.endswith('got "IPP101^^^HOSP^PI"')
    assert lines[-1] == "5 case(s): 4 passed, 1 failed"


async def test_enrich_api_answers_no_unqualified_ins(
    start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    engine = await start_engine(route_keys(tmp_path / "archive"), extra=HTTP, enrich=False)
    outputs = {}
    for control_id, (message, _, reason) in CASES.items():
        status, body, headers = await post(engine, message, Accept="application/json")
        assert status == 200, control_id
        answer = json.loads(body)
        outputs[control_id] = answer["message"].encode(answer["charset"])
        guard = {
            "step": "ins_guard",
            "destination": None,
            "kind": "ins_guard",
            "outcome": "removed",
            "detail": reason,
        }
        assert guard in answer["decisions"], control_id
        assert f"ins_guard=removed/{reason}" in headers["X-Route-Decisions"]
    assert_guarded(outputs)
    assert engine.store is not None
    assert await engine.store.find_messages(MessageQuery()) == []  # the API stores nothing


async def test_a_route_that_opts_out_forwards_the_raw_feed_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`strip_unqualified_ins = false` is the one way out: the INS leave as received, the
    engine logs it when it builds the route, and `check` warns, naming the file and key."""
    config = write_config(
        tmp_path, NO_STEPS + "\n[routes.ins_guard]\nstrip_unqualified_ins = false\n"
    )
    assert main(["check", "--config", str(config)]) == 0
    warning = capsys.readouterr().err
    assert f"warning: {config}: routes[0].ins_guard.strip_unqualified_ins:" in warning
    with capture_logs() as logs:
        async with await RouteRunner.open(config) as runner:
            outputs = [await runner.process(message) for message, _, _ in CASES.values()]
    assert [p.output for p in outputs] == [message for message, _, _ in CASES.values()]
    assert [log["event"] for log in logs if log["log_level"] == "warning"] == [GUARD_OFF_WARNING]
