"""`POST /api/v1/enrich` over real HTTP against an engine in this process: the route's own
steps, INSi service and cache, a bearer token, the outcome in headers or JSON, nothing
stored."""

from __future__ import annotations

import io
import json
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.http.app import MAX_BODY_BYTES
from engine.mllp.client import MllpClient
from engine.store.base import MessageQuery
from tests.conftest import StartEngine
from tests.delivery.harness import eventually
from tests.support.metrics import labelled
from tests.test_end_to_end import NONE, VALI

TOKEN = "api-secret-4Jw"
HTTP = '[http]\nlisten = "127.0.0.1:0"\napi_token_env = "TEST_API_TOKEN"\n'
INS = "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"


@pytest.fixture
async def engine(start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    return await start_engine(extra=HTTP, enrich=True)


def url(engine: Engine) -> str:
    assert engine.http is not None
    host, port = engine.http.address
    return f"http://{host}:{port}/api/v1/enrich"


async def post(
    engine: Engine, body: bytes, token: str | None = TOKEN, **headers: str
) -> tuple[int, bytes, dict[str, str]]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url(engine), data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.read(), dict(answer.headers)


async def test_the_answer_is_the_enriched_message_with_its_outcome_in_headers(
    engine: Engine,
) -> None:
    status, body, headers = await post(engine, VALI)
    assert status == 200
    assert headers["Content-Type"] == "x-application/hl7-v2+er7; charset=iso8859-1"
    assert headers["X-INS-Outcome"] == "added"
    assert headers["X-INS-Detail"] == ""
    assert headers["X-INS-Simulated"] == "true"
    assert headers["X-Route-Decisions"] == "ins_enrich=added"
    pid = next(segment for segment in body.split(b"\r") if segment.startswith(b"PID"))
    assert INS.encode() in pid
    assert body.startswith(VALI.split(b"\r")[0]), "MSH as received"


async def test_the_json_variant(engine: Engine) -> None:
    status, body, headers = await post(engine, NONE, Accept="application/json")
    assert status == 200
    answer = json.loads(body)
    assert {key: answer[key] for key in ("outcome", "detail", "simulated", "dropped")} == {
        "outcome": "not_found",
        "detail": "01",
        "simulated": True,
        "dropped": False,
    }
    assert answer["decisions"] == [
        {
            "step": "ins_enrich",
            "destination": None,
            "kind": "ins_enrich",
            "outcome": "not_found",
            "detail": "01",
        }
    ]
    assert answer["message"].encode("latin-1") == NONE
    assert headers["X-INS-Outcome"] == "not_found"


async def test_lf_line_ends_are_read_as_segments(engine: Engine) -> None:
    status, body, headers = await post(engine, VALI.replace(b"\r", b"\n"))
    assert (status, headers["X-INS-Outcome"]) == (200, "added")
    assert b"\n" not in body


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_no_answer_without_the_token(engine: Engine, token: str | None) -> None:
    status, body, headers = await post(engine, VALI, token=token)
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert b"ADRTROIS" not in body


async def test_without_a_configured_token_every_call_is_refused(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_API_TOKEN", raising=False)
    with capture_logs() as logs:
        engine = await start_engine(extra=HTTP, enrich=True)
    assert any("enrichment API off until TEST_API_TOKEN" in entry["event"] for entry in logs)
    assert (await post(engine, VALI, token=""))[0] == 401


async def test_bad_input_gets_a_clear_answer(engine: Engine) -> None:
    status, body, _ = await post(engine, b"hello, not HL7")
    assert status == 400
    assert json.loads(body)["error"] == "not_hl7"
    oru = VALI.replace(b"ADT^A28^ADT_A05", b"ORU^R01^ORU_R01")
    status, body, _ = await post(engine, oru, Accept="application/json")
    assert status == 422
    assert json.loads(body) == {
        "error": "refused",
        "detail": "message type ORU not accepted",
        "code": "200",
        "outcome": "rejected",
    }


async def test_nothing_is_stored_and_the_route_shares_the_api_cache(engine: Engine) -> None:
    assert engine.store is not None
    await post(engine, VALI)
    calls = labelled(engine.metrics.exposition().decode(), "ins_engine_insi_calls_total", "result")
    assert sum(calls.values()) >= 1
    assert await engine.store.find_messages(MessageQuery()) == []
    host, port = engine.listeners["adt"].address
    client = await MllpClient.connect(host, port)
    await client.exchange(VALI, 5)
    await client.close()
    [stored] = await engine.store.find_messages(MessageQuery())
    await eventually(lambda: engine.store.decisions(stored.message_id))  # the router took it
    again = labelled(engine.metrics.exposition().decode(), "ins_engine_insi_calls_total", "result")
    assert again == calls, "the route found the API's answer in the shared cache"
    assert len(await engine.store.find_messages(MessageQuery())) == 1


async def test_calls_are_counted_and_logged_without_patient_data(engine: Engine) -> None:
    with capture_logs() as logs:
        await post(engine, VALI)
        await post(engine, NONE)
        await post(engine, VALI, token="wrong")
    results = labelled(
        engine.metrics.exposition().decode(), "ins_engine_api_requests_total", "result"
    )
    assert results == {"added": 1, "not_found": 1, "unauthorized": 1}
    text = json.dumps(logs)
    for name in ("ADRTROIS", "DOMINIQUE", "HOUILLES", "297022A02077878", "IPP001"):
        assert name not in text
    api = [entry for entry in logs if entry["event"] == "api enrich"]
    assert [(entry["control_id"], entry["outcome"]) for entry in api] == [
        ("E2E001", "added"),
        ("E2E005", "not_found"),
    ]


async def test_a_message_a_step_drops_comes_back_as_sent(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    steps = (
        '[[routes.steps]]\nkind = "filter"\nname = "no-training"\naction = "drop"\n'
        'field = "MSH-11"\nvalues = ["T"]\n\n[[routes.steps]]\nkind = "ins_enrich"\nname = "ins"\n'
    )
    engine = await start_engine(steps, extra=HTTP, enrich=None)
    training = VALI.replace(b"|E2E001|P|", b"|E2E001|T|")
    status, body, headers = await post(engine, training)
    assert (status, body) == (200, training)
    assert headers["X-Route-Dropped"] == "true"
    assert headers["X-INS-Outcome"] == "none"
    assert headers["X-Route-Decisions"].startswith("no-training=dropped")
    status, body, headers = await post(engine, VALI)
    assert (headers["X-INS-Outcome"], "X-Route-Dropped" in headers) == ("added", False)
    assert headers["X-Route-Decisions"].startswith("no-training=")
    assert headers["X-Route-Decisions"].endswith("; ins=added")


async def test_a_destination_s_steps_are_named_with_their_destination(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    route = (
        '[[routes.steps]]\nkind = "ins_enrich"\nname = "ins"\n\n'
        f'[[routes.destinations]]\nname = "ehr"\nfile = "{tmp_path / "ehr"}"\n\n'
        '[[routes.destinations.steps]]\nkind = "set"\nname = "to-ehr"\nfield = "MSH-5"\n'
        'value = "EHR"\n'
    )
    engine = await start_engine(route, extra=HTTP, enrich=None)
    status, body, headers = await post(engine, VALI, Accept="application/json")
    assert status == 200
    assert headers["X-Route-Decisions"] == "ins=added; to-ehr@ehr=set/MSH-5"
    steps = [(d["step"], d["destination"], d["outcome"]) for d in json.loads(body)["decisions"]]
    assert steps == [("ins", None, "added"), ("to-ehr", "ehr", "set")]


async def test_aiohttp_s_own_refusals_are_json_too(engine: Engine) -> None:
    too_large = io.BytesIO(b"MSH" + b"x" * MAX_BODY_BYTES)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url(engine), data=too_large, headers=headers) as answer,
    ):
        assert answer.status == 413
        assert (await answer.json())["error"] == "request_entity_too_large"
    async with aiohttp.ClientSession() as session, session.get(url(engine)) as answer:
        assert answer.status == 405
        assert answer.headers["Allow"] == "POST"
        assert answer.content_type == "application/json"
        assert await answer.json() == {
            "error": "method_not_allowed",
            "detail": "405: Method Not Allowed",
        }
    async with aiohttp.ClientSession() as session, session.get(url(engine) + "/x") as answer:
        assert (answer.status, (await answer.json())["error"]) == (404, "not_found")
