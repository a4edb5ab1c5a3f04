"""Header text a sender chooses (MSH-9, MSH-18) reaches logs and ACKs only as a known code;
anything else is shown by its length."""

from __future__ import annotations

import io
import json

from engine.base.logs import configure_logging
from engine.hl7.codes import shown_type
from engine.mllp.client import MllpClient
from tests.support.messages import adt

SECRET = "DUPONT JEAN 1970"  # what a sender might put where a code belongs


def test_known_codes_are_shown_and_anything_else_by_its_length() -> None:
    assert shown_type("ADT^A28") == "ADT^A28"
    assert shown_type("ZFR^Z99") == "ZFR^Z99"  # site-defined types and events
    assert shown_type("ADT") == "ADT"
    assert shown_type(f"ADT^{SECRET}") == "ADT^unknown (16 characters)"
    assert shown_type(f"{SECRET}^A01") == "unknown (16 characters)^A01"
    assert shown_type("adt^a28\x1b[2J") == "unknown (3 characters)^unknown (7 characters)"


async def test_unknown_header_values_are_never_repeated_in_acks_or_logs(start_engine) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)  # each message's line is at debug
    engine = await start_engine('accept = ["ADT^A28"]')
    client = await MllpClient.connect(*engine.listeners["adt"].address)
    replies = [
        await client.exchange(payload, 5)
        for payload in (
            adt("H1", charset=SECRET),  # unknown MSH-18
            adt("H2", message_type=SECRET),  # unknown MSH-9.1
            adt("H3", event=SECRET),  # unknown MSH-9.2
            adt("H4", charset="rot13"),  # a codec, but no text encoding
            adt("H5"),  # the connection is still served
        )
    ]
    await client.close()
    await engine.stop()
    unknown, bad_type, bad_event, rot13, fine = replies
    for reply in replies:
        assert SECRET.encode() not in reply
    assert b"MSA|AE|H1|unsupported character set: unknown (16 characters)\r" in unknown
    assert b"|103^Table value not found^HL70357|" in unknown
    assert b"MSA|AR|H2|message type unknown (16 characters) not accepted\r" in bad_type
    assert b"ACK^^ACK" in bad_event  # the trigger is not repeated in MSH-9 either
    assert b"MSA|AR|H3|event unknown (16 characters) not accepted\r" in bad_event
    assert b"MSA|AE|H4|unsupported character set: unknown (5 characters)\r" in rot13
    assert b"MSA|AA|H5" in fine
    logged = stream.getvalue()
    assert SECRET not in logged and "rot13" not in logged
    handled = [json.loads(line) for line in logged.splitlines()]
    types = [line["message_type"] for line in handled if line["event"] == "message handled"]
    assert types == [
        "ADT^A28",
        "unknown (16 characters)^A28",
        "ADT^unknown (16 characters)",
        "ADT^A28",
        "ADT^A28",
    ]
