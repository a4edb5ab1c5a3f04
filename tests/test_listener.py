"""The MLLP listener over real loopback sockets, with a real SQLite store behind it."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from engine.app.runtime import Engine
from engine.base.logs import configure_logging
from engine.console.dashboard import RateSampler, route_cards
from engine.inbound.connection import DiscardCounter
from engine.mllp.client import MllpClient, MllpClientError
from engine.mllp.codec import encode_frame
from tests.support.messages import adt
from tests.support.metrics import value

ACK_HEADER = (
    "MSH|^~\\&|INS-ENGINE|HOSP|PAS|HOSP|20260102030405||ACK^{event}^ACK|ACK{n:05d}|P|"
    "2.5^FRA^2.11||||||8859/1\r"
)


def address(engine: Engine) -> tuple[str, int]:
    return engine.listeners["adt"].address


async def connect(engine: Engine, **kwargs: object) -> MllpClient:
    host, port = address(engine)
    return await MllpClient.connect(host, port, **kwargs)  # type: ignore[arg-type]


async def send(engine: Engine, *payloads: bytes) -> list[bytes]:
    client = await connect(engine)
    try:
        return [await client.exchange(payload, 5) for payload in payloads]
    finally:
        await client.close()


def stored_rows(tmp_path: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(tmp_path / "engine.db") as db:
        return db.execute(
            "SELECT control_id, message_type, raw FROM messages ORDER BY id"
        ).fetchall()


async def test_accepted_message_gets_an_exact_aa_and_is_stored(start_engine, tmp_path) -> None:
    engine = await start_engine()
    message = adt("MSG0001")
    (ack,) = await send(engine, message)
    assert ack == (ACK_HEADER.format(event="A28", n=1) + "MSA|AA|MSG0001\r").encode()
    assert stored_rows(tmp_path) == [("MSG0001", "ADT^A28", message)]


async def test_unsupported_type_and_event_are_rejected_with_err(start_engine, tmp_path) -> None:
    engine = await start_engine('accept = ["ADT^A28", "ADT^A31"]')
    oru, a01 = await send(engine, adt("M1", "R01", message_type="ORU"), adt("M2", "A01"))
    assert b"MSA|AR|M1|" in oru and b"ERR||MSH^1^9^1|200^Unsupported message type^HL70357|E" in oru
    assert b"MSA|AR|M2|" in a01 and b"|201^Unsupported event code^HL70357|E" in a01
    assert stored_rows(tmp_path) == []


async def test_undecodable_and_non_hl7_content_get_a_nack_and_the_connection_lives_on(
    start_engine, tmp_path
) -> None:
    engine = await start_engine()
    bad_utf8 = adt("M1", charset="UNICODE UTF-8", name="HÉLÈNE^A^^^^^L", encoding="latin-1")
    undecodable, garbage, good = await send(engine, bad_utf8, b"hello world", adt("M3"))
    assert b"MSA|AE|M1|" in undecodable and b"|102^Data type error^HL70357|E" in undecodable
    assert b"MSA|AR||" in garbage and b"|100^Segment sequence error^HL70357|E" in garbage
    assert b"MSA|AA|M3" in good
    assert [row[0] for row in stored_rows(tmp_path)] == ["M3"]


async def test_msh18_naming_a_python_codec_gets_a_nack_like_any_unknown_charset(
    start_engine, tmp_path
) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    engine = await start_engine()
    # Codecs that raise on any input, misread a message, or make the lookup itself raise.
    labels = ["undefined", "punycode", "idna", "utf-16", "unicode_escape", "8859/1\x00", "\x00"]
    replies = await send(engine, *(adt(f"C{n}", charset=label) for n, label in enumerate(labels)))
    (fine,) = await send(engine, adt("OK"))
    await engine.stop()
    for n, (label, reply) in enumerate(zip(labels, replies, strict=True)):
        assert f"MSA|AE|C{n}|unsupported character set: unknown ({len(label)} characters)\r" in (
            reply.decode("latin-1")
        )
        assert b"|MSH^1^18|103^Table value not found^HL70357|E" in reply
        assert b"|ACK^A28^ACK|" in reply and reply.endswith(b"\r")  # no MSH-18 repeated
    assert b"MSA|AA|OK" in fine
    assert [row[0] for row in stored_rows(tmp_path)] == ["OK"]
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert not [line for line in logged if line["level"] == "error" or "exception" in line]


async def test_enhanced_mode_follows_msh15(start_engine) -> None:
    engine = await start_engine()
    client = await connect(engine)
    always = await client.exchange(adt("E1", msh15="AL", msh16="NE"), 5)
    assert b"MSA|CA|E1" in always
    # NE: no accept ACK at all; the next block's answer is the next thing on the wire.
    host, port = address(engine)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode_frame(adt("E2", msh15="NE")) + encode_frame(adt("E3", msh15="AL")))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    assert b"MSA|CA|E3" in reply and b"E2" not in reply
    # ER: only errors are acknowledged.
    error_only = await client.exchange(adt("E4", "R01", msh15="ER", message_type="ORU"), 5)
    assert b"MSA|CR|E4" in error_only
    writer.close()
    await client.close()


async def test_duplicate_gets_the_original_ack_and_is_stored_once(start_engine, tmp_path) -> None:
    engine = await start_engine()
    first, again = await send(engine, adt("D1"), adt("D1"))
    assert first == again
    assert len(stored_rows(tmp_path)) == 1


async def test_resend_with_a_new_timestamp_is_still_a_duplicate(start_engine, tmp_path) -> None:
    engine = await start_engine()
    resent = adt("D1").replace(b"20240101120000||ADT", b"20240101120500||ADT")
    first, again = await send(engine, adt("D1"), resent)
    assert first == again and len(stored_rows(tmp_path)) == 1


async def test_same_control_id_with_other_content_is_rejected(start_engine, tmp_path) -> None:
    engine = await start_engine()
    _, other = await send(engine, adt("D1"), adt("D1", patient_id="999"))
    assert b"MSA|AR|D1|" in other and b"|205^Duplicate key identifier^HL70357|" in other
    assert len(stored_rows(tmp_path)) == 1


async def test_an_ack_is_never_acknowledged(start_engine) -> None:
    engine = await start_engine()
    host, port = address(engine)
    reader, writer = await asyncio.open_connection(host, port)
    ack = b"MSH|^~\\&|X|Y|Z|W|20240101||ACK^A28^ACK|A1|P|2.5\rMSA|AA|M1\r"
    writer.write(encode_frame(ack) + encode_frame(adt("M2")))
    await writer.drain()
    reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    assert b"MSA|AA|M2" in reply
    writer.close()


async def test_junk_before_a_frame_is_discarded(start_engine) -> None:
    engine = await start_engine()
    host, port = address(engine)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GARBAGE" + encode_frame(adt("J1")))
    await writer.drain()
    assert b"MSA|AA|J1" in await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    writer.close()


async def test_a_flood_of_start_bytes_is_counted_not_logged_line_by_line(start_engine) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    engine = await start_engine()
    reader, writer = await asyncio.open_connection(*address(engine))
    for _ in range(40):  # 40 KB of 0x0B inside an unfinished block, in many reads
        writer.write(b"\x0b" * 1000)
        await writer.drain()
    writer.write(encode_frame(adt("J2")))
    assert b"MSA|AA|J2" in await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    writer.close()
    await engine.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    discarded = [line for line in lines if line["event"] == "bytes outside a block discarded"]
    assert 1 <= len(discarded) <= 2  # once per block, or per second: never once per read
    assert sum(line["size"] for line in discarded) == 40_000


def test_discarded_bytes_are_reported_once_per_second_at_most() -> None:
    now = [0.0]
    counter = DiscardCounter(lambda: now[0], interval_s=1.0)
    assert [counter.add(1) for _ in range(500)] == [0] * 500
    now[0] = 0.999
    assert counter.add(1) == 0
    now[0] = 1.0
    assert counter.add(1) == 502
    assert counter.add(7) == 0
    assert counter.take() == 7  # a block ended: what is left is reported with it
    assert counter.take() == 0


async def test_oversize_frame_is_answered_and_the_connection_stays_usable(start_engine) -> None:
    engine = await start_engine("max_frame_bytes = 2048")
    big = adt("BIG1") + b"NTE|1||" + b"x" * 5000 + b"\r"
    too_big, fine = await send(engine, big, adt("OK1"))
    assert b"MSA|AR|BIG1|" in too_big and b"|207^Application internal error^HL70357|" in too_big
    assert b"MSA|AA|OK1" in fine


async def test_mllp_release2_answers_with_commit_blocks(start_engine, tmp_path) -> None:
    engine = await start_engine("mllp_release2 = true")
    stored, refused = await send(engine, adt("R1"), b"not hl7")
    assert (stored, refused) == (b"\x06", b"\x15")
    assert [row[0] for row in stored_rows(tmp_path)] == ["R1"]


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def test_idle_connection_is_closed_and_does_not_hang(start_engine) -> None:
    engine = await start_engine("idle_timeout_s = 0.2")
    reader, writer = await asyncio.open_connection(*address(engine))
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_started_frame_that_never_ends_is_closed(start_engine) -> None:
    engine = await start_engine("frame_timeout_s = 0.2\nidle_timeout_s = 60")
    reader, writer = await asyncio.open_connection(*address(engine))
    writer.write(b"\x0bMSH|^~\\&|half a message")
    await writer.drain()
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_end_of_stream_mid_frame_leaves_the_listener_serving(start_engine) -> None:
    engine = await start_engine()
    _, writer = await asyncio.open_connection(*address(engine))
    writer.write(b"\x0bMSH|^~\\&|cut")
    await writer.drain()
    writer.close()
    (ack,) = await send(engine, adt("AFTER"))
    assert b"MSA|AA|AFTER" in ack


async def test_a_block_trickled_in_byte_by_byte_is_closed_at_the_frame_deadline(
    start_engine,
) -> None:
    engine = await start_engine("frame_timeout_s = 0.5\nidle_timeout_s = 60")
    reader, writer = await asyncio.open_connection(*address(engine))
    trickle = b"\x0bMSH|^~\\&|" + b"x" * 100
    sent = 0
    for byte in trickle:  # a byte every 50 ms: each read is quick, the block never ends
        # Closed: a FIN, or a reset when the engine closed with a byte still unread.
        if reader.at_eof() or writer.is_closing():
            break
        writer.write(bytes([byte]))
        sent += 1
        await asyncio.sleep(0.05)
    assert await read_until_closed(reader) == b""
    assert sent < len(trickle), "closed while the block trickled: the timeout is per block"
    writer.close()


async def test_at_the_limit_a_connection_that_never_completed_a_block_is_displaced(
    start_engine,
) -> None:
    engine = await start_engine("max_connections = 2")
    sender = await connect(engine)
    assert b"MSA|AA" in await sender.exchange(adt("C1"), 5)
    silent_reader, silent_writer = await asyncio.open_connection(*address(engine))
    (ack,) = await send(engine, adt("C2"))  # a newcomer takes the silent one's slot
    assert b"MSA|AA|C2" in ack
    assert await read_until_closed(silent_reader) == b""
    silent_writer.close()
    assert b"MSA|AA|C3" in await sender.exchange(adt("C3"), 5)
    await sender.close()


async def test_at_the_limit_a_sender_that_completed_a_block_lately_keeps_its_slot(
    start_engine,
) -> None:
    engine = await start_engine("max_connections = 1")
    sender = await connect(engine)
    assert b"MSA|AA" in await sender.exchange(adt("B1"), 5)
    refused_reader, refused_writer = await asyncio.open_connection(*address(engine))
    assert await read_until_closed(refused_reader) == b""
    refused_writer.close()
    assert b"MSA|AA|B2" in await sender.exchange(adt("B2"), 5)
    await sender.close()


async def test_at_the_per_address_limit_an_address_displaces_only_its_own(start_engine) -> None:
    engine = await start_engine("max_connections = 3\nmax_connections_per_address = 1")
    host, port = address(engine)
    other = await MllpClient.connect(host, port, local_address=("127.0.0.2", 0))
    assert b"MSA|AA" in await other.exchange(adt("P1"), 5)
    silent_reader, silent_writer = await asyncio.open_connection(host, port)
    (ack,) = await send(engine, adt("P2"))  # from 127.0.0.1: displaces 127.0.0.1's silent one
    assert b"MSA|AA|P2" in ack
    assert await read_until_closed(silent_reader) == b""
    silent_writer.close()
    assert b"MSA|AA|P3" in await other.exchange(adt("P3"), 5)
    await other.close()


async def test_beyond_the_accept_rate_a_new_connection_is_refused(start_engine) -> None:
    engine = await start_engine("max_connections = 2\nmax_accepts_per_s = 0.001")
    opened = [await asyncio.open_connection(*address(engine)) for _ in range(2)]  # the burst
    refused_reader, refused_writer = await asyncio.open_connection(*address(engine))
    assert await read_until_closed(refused_reader) == b""
    refused_writer.close()
    for _, writer in opened:
        writer.close()
    text = engine.metrics.exposition().decode()
    refused = value(
        text, "ins_engine_mllp_connections_refused_total", route="adt", reason="accept_rate"
    )
    assert refused == 1


async def test_source_outside_the_allow_list_is_disconnected(start_engine) -> None:
    engine = await start_engine('allow = ["10.0.0.0/8"]')
    reader, writer = await asyncio.open_connection(*address(engine))
    writer.write(encode_frame(adt("X1")))
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_source_inside_the_allow_list_is_served(start_engine) -> None:
    engine = await start_engine('allow = ["127.0.0.0/8", "::1"]')
    (ack,) = await send(engine, adt("X2"))
    assert b"MSA|AA|X2" in ack


async def test_stop_returns_with_an_idle_connection_open(start_engine) -> None:
    engine = await start_engine()
    client = await connect(engine)
    await client.exchange(adt("S1"), 5)
    await asyncio.wait_for(engine.stop(), 5)
    with pytest.raises(MllpClientError):
        await client.exchange(adt("S2"), 2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("pas.hospital.example", common_name="PAS")
    files = {
        "ca": folder / "ca.pem",
        "server": folder / "server.pem",
        "server_key": folder / "server.key",
        "client": folder / "client.pem",
        "client_key": folder / "client.key",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["server"])
    server.private_key_pem.write_to_path(files["server_key"])
    client.cert_chain_pems[0].write_to_path(files["client"])
    client.private_key_pem.write_to_path(files["client_key"])
    return {**files, "ca_object": ca, "client_object": client}


def tls_route(pki: dict[str, object], mutual: bool) -> str:
    client_ca = f'client_ca = "{pki["ca"]}"\n' if mutual else ""
    return f'[routes.tls]\ncert = "{pki["server"]}"\nkey = "{pki["server_key"]}"\n{client_ca}'


def client_context(pki: dict[str, object], with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_cert:
        context.load_cert_chain(str(pki["client"]), str(pki["client_key"]))
    return context


async def test_tls_listener(start_engine, pki) -> None:
    engine = await start_engine(tls_route(pki, mutual=False))
    client = await connect(engine, ssl_context=client_context(pki, with_cert=False))
    for name in ("T1", "T1b", "T1c"):  # the first may come with the handshake's last bytes
        assert f"MSA|AA|{name}".encode() in await client.exchange(adt(name), 5)
    await client.close()


async def test_mutual_tls_requires_a_client_certificate(start_engine, pki) -> None:
    engine = await start_engine(tls_route(pki, mutual=True))
    client = await connect(engine, ssl_context=client_context(pki, with_cert=True))
    assert b"MSA|AA|T2" in await client.exchange(adt("T2"), 5)
    await client.close()
    with pytest.raises(MllpClientError):
        anonymous = await connect(engine, ssl_context=client_context(pki, with_cert=False))
        await anonymous.exchange(adt("T3"), 5)


async def test_refused_tls_client_is_logged_with_its_address_only(start_engine, pki) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    engine = await start_engine(tls_route(pki, mutual=True))
    with pytest.raises(MllpClientError):
        anonymous = await connect(engine, ssl_context=client_context(pki, with_cert=False))
        await anonymous.exchange(adt("T4"), 5)
    await engine.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line for line in lines if line["event"] == "connection refused"]
    assert refused and refused[0]["reason"].startswith("TLS handshake failed")
    assert refused[0]["peer"].startswith("127.0.0.1:")


async def test_a_tls_handshake_not_done_within_the_frame_timeout_is_refused(
    start_engine, pki
) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    engine = await start_engine("frame_timeout_s = 0.3\n" + tls_route(pki, mutual=False))
    silent_reader, silent = await asyncio.open_connection(*address(engine))  # no ClientHello
    assert await read_until_closed(silent_reader) == b""
    silent.close()
    await engine.stop()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line["reason"] for line in lines if line["event"] == "connection refused"]
    assert refused == ["TLS handshake timed out"]


@pytest.mark.system
async def test_a_stalled_tls_handshake_is_displaced_at_the_limit(start_engine, pki) -> None:
    engine = await start_engine("max_connections = 1\n" + tls_route(pki, mutual=False))
    silent_reader, silent = await asyncio.open_connection(*address(engine))  # no ClientHello
    client = await connect(engine, ssl_context=client_context(pki, with_cert=False))
    assert b"MSA|AA|" in await client.exchange(adt("T6"), 5)
    assert await read_until_closed(silent_reader) == b""
    silent.close()
    await client.close()


async def test_plain_client_on_a_tls_listener_gets_nothing_stored(
    start_engine, pki, tmp_path
) -> None:
    engine = await start_engine(tls_route(pki, mutual=False))
    reader, writer = await asyncio.open_connection(*address(engine))
    writer.write(encode_frame(adt("PLAIN")))
    await writer.drain()
    assert b"MSA" not in await read_until_closed(reader)
    writer.close()
    assert stored_rows(tmp_path) == []


async def test_python_hl7_mllp_send_gets_its_acks(start_engine, tmp_path) -> None:
    """A third-party client: python-hl7's mllp_send command reading a file."""
    engine = await start_engine()
    messages = tmp_path / "messages.hl7"
    messages.write_bytes(b"\n".join(adt(f"P{i}").replace(b"\r", b"\n") for i in range(3)))
    host, port = address(engine)
    mllp_send = Path(sys.executable).with_name("mllp_send")
    process = await asyncio.create_subprocess_exec(
        str(mllp_send),
        "--loose",
        "--file",
        str(messages),
        "--port",
        str(port),
        host,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert out.count(b"MSA|AA|") == 3
    assert [row[0] for row in stored_rows(tmp_path)] == ["P0", "P1", "P2"]


async def test_the_dashboard_card_shows_what_the_connections_do_and_the_displacements(
    start_engine,
) -> None:
    engine = await start_engine("max_connections = 2")
    sender = await connect(engine)
    assert b"MSA|AA" in await sender.exchange(adt("D1"), 5)
    _, silent = await asyncio.open_connection(*address(engine))
    (ack,) = await send(engine, adt("D2"))  # displaces the silent one
    assert b"MSA|AA|D2" in ack
    (card,) = await route_cards(engine, RateSampler(engine.metrics))
    assert card.census == {"completing": 1}
    assert card.closed == {"displaced_never_completed": 1}
    assert card.refused == {}
    silent.close()
    await sender.close()
