"""The filter kind: keep or stop by type, sender or a field's value; what a stopped message
gets; and the settings `check` refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.embed import RouteRunner
from engine.hl7.ack import Outcome
from tests.support.config_errors import config_error
from tests.support.messages import adt

ROUTE = '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
DESTINATION = '[[routes.destinations]]\nname = "lis"\nfile = "out"\n'


def config(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(f'{ROUTE}[[routes.steps]]\nkind = "filter"\n{step}\n{DESTINATION}', "utf-8")
    return path


async def decisions(path: Path, *messages: bytes) -> list[tuple[str, str, bool]]:
    """(outcome, detail, delivered) of each message."""
    found = []
    async with await RouteRunner.open(path) as runner:
        for raw in messages:
            processed = await runner.process(raw)
            (decision,) = processed.decisions
            found.append((decision.outcome, decision.detail, "lis" in processed.destinations))
    return found


async def test_keep_lets_only_matching_messages_through(tmp_path: Path) -> None:
    path = config(tmp_path, 'types = ["ADT^A28", "ADT^A31"]\nsending_facility = ["HOSP"]')
    assert await decisions(
        path, adt("K1", "A28"), adt("K2", "A08"), adt("K3", "A31").replace(b"|HOSP|", b"|CLIN|", 1)
    ) == [
        ("kept", "", True),
        ("dropped", "200 MSH^1^9", False),
        ("dropped", "207 MSH^1^4", False),
    ]


async def test_drop_stops_matching_messages_by_a_field_value(tmp_path: Path) -> None:
    path = config(tmp_path, 'action = "drop"\nfield = "MSH-11"\nvalues = ["T", ""]')
    training = adt("T1").replace(b"|T1|P|", b"|T1|T|")
    empty = adt("T2").replace(b"|T2|P|", b"|T2||")
    assert await decisions(path, adt("P1"), training, empty) == [
        ("kept", "", True),
        ("dropped", "103 MSH^1^11", False),
        ("dropped", "103 MSH^1^11", False),
    ]


async def test_before_the_ack_a_stopped_message_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path, 'sending_application = ["PAS"]\non_stop = "AR"\nbefore_ack = true')
    async with await RouteRunner.open(path) as runner:
        refused = await runner.process(adt("R1", sender="LAB"))
    assert refused.refusal is not None
    assert refused.refusal.outcome is Outcome.REJECTED
    assert (refused.refusal.error.code.value, refused.refusal.error.location) == (207, "MSH^1^3")
    assert [(d.step, d.outcome) for d in refused.decisions] == [("filter", "refused")]
    assert refused.destinations == {}


@pytest.mark.parametrize(
    ("step", "key", "expected"),
    [
        ('action = "keep"', "types", "at least one criterion"),
        ('types = ["ADT^*"]\naction = "stop"', "action", '"keep" or "drop"'),
        ('field = "PV1-2"', "values", "given with `field`"),
        ('types = ["ADT^*"]\non_stop = "AE"', "on_stop", "needs before_ack = true"),
        ('types = ["ADT^*"]\non_stop = "NAK"', "on_stop", '"drop", "AE" or "AR"'),
        ('field = "PV1-2-x"\nvalues = ["I"]', "field", "a field such as"),
    ],
)
def test_settings_errors_name_the_key(tmp_path: Path, step: str, key: str, expected: str) -> None:
    error = config_error(config(tmp_path, step))
    assert error.key == f"routes[0].steps[0].{key}"
    assert expected in error.expected
