"""What a FHIR destination's delivery process spends on each message before and after the
network, measured alone in this process: the same A28 messages the FHIR setups send.

    python -m bench.fhir_path [--messages 1000]

Stages, in the order the sender runs them (engine/fhir/sender.py, feed.py, server.py): the
outbound bytes decoded and parsed, `map_patient` (PID to FR Core Patient), the source-event
stamp, `problems` (R4 structure by fhir.resources, FR Core rules by FHIRPath), the PUT body
serialised and a search answer (a Bundle holding the Patient) read back. What is left of
the engine's CPU per delivered message is the HTTP client and the delivery machinery.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.messages import adt_message, patients_from_simulator
from engine.fhir.feed import _event_time, _stamp, _stamped
from engine.fhir.patient import PatientOptions, map_patient
from engine.fhir.sender import read_message
from engine.fhir.validation import problems
from engine.hl7.charset import CharsetPolicy

ROUNDS = 3  # the fastest of three passes: the machine is shared


def _timed(work: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, list[Any]]:
    """µs per input of the fastest pass, and the outputs."""
    best, outputs = float("inf"), []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        outputs = [work(one) for one in inputs]
        best = min(best, time.perf_counter() - started)
    return best / len(inputs) * 1e6, outputs


def fhir_path_costs(count: int = 1000) -> dict[str, float]:
    """µs per message of each stage of the FHIR path, and their total."""
    patients = patients_from_simulator(count, seed=7)
    payloads = [adt_message(n, patients) for n in range(count)]
    policy = CharsetPolicy()  # a route's defaults
    options = PatientOptions()
    problems(map_patient(read_message(payloads[0], policy), options).resource)  # imports

    costs: dict[str, float] = {}
    costs["decode and parse the HL7 message"], messages = _timed(
        lambda payload: read_message(payload, policy), payloads
    )
    costs["map_patient (PID to FR Core Patient)"], mapped = _timed(
        lambda message: map_patient(message, options), messages
    )
    pairs = list(zip(messages, mapped, strict=True))
    costs["source-event stamp"], resources = _timed(
        lambda pair: _stamped(pair[1].resource, _stamp(_event_time(pair[0]), "B0")), pairs
    )
    costs["problems (R4 structure, FR Core rules)"], found = _timed(problems, resources)
    assert not any(found), found[:1]
    costs["PUT body to JSON (orjson)"], bodies = _timed(orjson.dumps, resources)
    answers = [
        orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r}]})
        for r in resources
    ]
    costs["search answer from JSON (orjson)"], _ = _timed(orjson.loads, answers)
    total = sum(costs.values())
    rounded = {stage: round(cost, 1) for stage, cost in costs.items()}
    rounded["total"] = round(total, 1)
    rounded["body_bytes"] = round(sum(map(len, bodies)) / len(bodies))
    return rounded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    for stage, cost in fhir_path_costs(args.messages).items():
        print(f"{stage:42s} {cost}")


if __name__ == "__main__":
    main()
