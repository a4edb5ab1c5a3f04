"""`POST /api/v1/enrich`: a route's steps for another engine's channel, over HTTP.

A Mirth/OIE or Rhapsody channel posts one ER7 message and gets it back as the route would
forward it: the same steps, the same INSi service and result cache as the engine's own
traffic (`[http] api_route`, default the first route). Nothing is stored and nothing is
delivered: the caller keeps the message. The answer is the message's bytes with the
outcome in headers, or, with `Accept: application/json` (or `?format=json`), a JSON
object. Every call needs `Authorization: Bearer <token>`, the token being the value of the
environment variable `[http] api_token_env` names.

Headers and JSON carry codes only (outcomes, details, step and destination names); the
message itself is the caller's, returned to it and never logged. Every error, aiohttp's own
(413 body too large, 405 another method than POST) included, is a JSON object.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from engine.base.logs import get_logger
from engine.embed import Processed, RouteRunner
from engine.enrich.store import KIND as ENRICH_KIND
from engine.http.server import json_error
from engine.http.tokens import bearer_matches, configured_token
from engine.http.view import engine_of, engine_of_app
from engine.inbound.admission import Unreadable
from engine.routing.route import NO_DESTINATION
from engine.steps.kind import Resources
from engine.store.decision import Decision

ER7 = "x-application/hl7-v2+er7"
RUNNER = web.AppKey("api_runner", RouteRunner)
log = get_logger("engine.api")


def _segments(body: bytes) -> bytes:
    """Segments end with CR in HL7; a body sent with LF or CRLF line ends is read alike."""
    if b"\r" not in body:
        return body.replace(b"\n", b"\r")
    return body.replace(b"\r\n", b"\r")


def _steps(processed: Processed) -> list[Decision]:
    """The steps' decisions; which destinations would take the message is not the API's."""
    return [decision for decision in processed.decisions if decision != NO_DESTINATION]


def _step_name(decision: Decision) -> str:
    """`ins` for a route's step, `ins@ehr` for a step of destination `ehr` only."""
    return f"{decision.step}@{decision.destination}" if decision.destination else decision.step


def _dropped(processed: Processed) -> bool:
    """A step stopped the message (a filter): the caller gets it back as sent."""
    return processed.output is None


def _enrichment(decisions: list[Decision]) -> Decision | None:
    return next((decision for decision in decisions if decision.kind == ENRICH_KIND), None)


def _simulated(decision: Decision | None) -> bool:
    record = decision.payload if decision is not None else None
    return bool(record.get("simulated")) if isinstance(record, dict) else False


def _answer_json(processed: Processed, body: bytes, codec: str) -> dict[str, Any]:
    enrichment = _enrichment(processed.decisions)
    output = processed.output if processed.output is not None else body
    return {
        "outcome": enrichment.outcome if enrichment else None,
        "detail": enrichment.detail if enrichment else None,
        "simulated": _simulated(enrichment),
        "dropped": _dropped(processed),
        "decisions": [
            {
                "step": d.step,
                "destination": d.destination or None,
                "kind": d.kind,
                "outcome": d.outcome,
                "detail": d.detail,
            }
            for d in _steps(processed)
        ],
        "charset": codec,
        "message": output.decode(codec),
    }


def _headers(processed: Processed) -> dict[str, str]:
    enrichment = _enrichment(processed.decisions)
    headers = {
        "X-INS-Outcome": enrichment.outcome if enrichment else "none",
        "X-INS-Detail": enrichment.detail if enrichment else "",
        "X-INS-Simulated": "true" if _simulated(enrichment) else "false",
        "X-Route-Decisions": "; ".join(
            f"{_step_name(d)}={d.outcome}" + (f"/{d.detail}" if d.detail else "")
            for d in _steps(processed)
        ),
    }
    if _dropped(processed):
        headers["X-Route-Dropped"] = "true"
    return headers


def _wants_json(request: web.Request) -> bool:
    return request.query.get("format") == "json" or "application/json" in request.headers.get(
        "Accept", ""
    )


async def enrich(request: web.Request) -> web.Response:
    engine = engine_of(request)
    started = time.perf_counter()
    if not bearer_matches(request, configured_token(engine.http.api_token_env)):
        engine.metrics.api_request("unauthorized")
        return web.json_response(
            {"error": "unauthorized", "detail": "Authorization: Bearer <token> required"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = _segments(await request.read())
    runner = request.app[RUNNER]
    admission = runner.admit(body)
    if isinstance(admission, Unreadable):
        engine.metrics.api_request("not_hl7")
        return json_error(400, "not_hl7", admission.refusal.error.text)
    processed = await runner.route(admission)
    routed = admission.routed
    control_id = routed.header.control_id
    if processed.refusal is not None:
        engine.metrics.api_request("refused")
        refusal = processed.refusal
        return json_error(
            422,
            "refused",
            refusal.error.text,
            code=str(refusal.error.code.value),
            outcome=refusal.outcome.value,
        )
    enrichment = _enrichment(processed.decisions)
    result = "dropped" if _dropped(processed) else (enrichment.outcome if enrichment else "passed")
    engine.metrics.api_request(result)
    log.info(
        "api enrich",
        route=runner.plan.settings.name,
        control_id=control_id,
        outcome=result,
        code=enrichment.detail if enrichment else None,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    if _wants_json(request):
        return web.json_response(
            _answer_json(processed, body, routed.codec), headers=_headers(processed)
        )
    output = processed.output if processed.output is not None else body
    return web.Response(
        body=output, headers=_headers(processed), content_type=ER7, charset=routed.codec
    )


def register(app: web.Application) -> None:
    engine = engine_of_app(app)
    name = engine.http.api_route or engine.config.routes[0].name
    # The engine owns what the steps share (the INSi service) and closes it: the runner's
    # own Resources stay empty.
    app[RUNNER] = RouteRunner(engine.plans[name], Resources())
    if configured_token(engine.http.api_token_env) is None:
        log.info(f"enrichment API off until {engine.http.api_token_env} holds a token", route=name)
    app.router.add_post("/api/v1/enrich", enrich)
