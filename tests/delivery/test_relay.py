"""The channel between an engine and its delivery process: named messages, each end
receiving only its own kinds, over a real socket pair."""

from __future__ import annotations

import socket

import pytest

from engine.delivery.relay import Answer, Ask, Stop, Wake, to_engine, to_process
from engine.delivery.writes import MarkDelivered
from engine.store.base import Lease


async def test_a_write_and_its_answer_cross_the_channel() -> None:
    ours, theirs = socket.socketpair()
    engine, process = await to_process(ours), await to_engine(theirs)
    fence = Lease("delivery adt/down", "engine-a/delivery", 3, 1.0)
    process.send(Ask(7, MarkDelivered(42, "AA", fence)))
    engine.send(Wake())
    engine.send(Answer(7, True, True))
    assert await engine.receive() == Ask(7, MarkDelivered(42, "AA", fence))
    assert await process.receive() == Wake()
    assert await process.receive() == Answer(7, True, True)
    engine.close()
    assert await process.receive() is None  # the engine is gone
    process.close()


async def test_an_end_refuses_what_only_the_other_end_receives() -> None:
    ours, theirs = socket.socketpair()
    engine, process = await to_process(ours), await to_engine(theirs)
    process.send(Stop())  # type: ignore[arg-type]  # the process never sends a stop
    with pytest.raises(TypeError, match="Stop"):
        await engine.receive()
    engine.close()
    process.close()


async def test_wake_ups_sent_in_one_turn_cross_as_one() -> None:
    ours, theirs = socket.socketpair()
    engine, process = await to_process(ours), await to_engine(theirs)
    engine.send_once(Wake())
    engine.send(Answer(1, True, [True] * 100_000))
    engine.send_once(Wake())
    await engine.drain()
    engine.send_once(Wake())  # the next turn's: sent again
    engine.send(Stop())
    assert await process.receive() == Wake()
    assert await process.receive() == Answer(1, True, [True] * 100_000)
    assert await process.receive() == Wake()
    assert await process.receive() == Stop()
    engine.close()
    process.close()
