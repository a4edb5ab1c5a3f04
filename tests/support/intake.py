"""One block through a route's intake, as the listener hands over a read holding only it."""

from __future__ import annotations

import asyncio
from typing import cast

from engine.inbound.intake import Batch, Intake, Storing, Verdict
from engine.mllp.codec import Frame


async def receive(intake: Intake, payload: bytes, peer: str = "127.0.0.1:1") -> Verdict:
    (verdict,) = await answers(intake, intake.admit([Frame(payload)], peer))
    return verdict


async def answers(intake: Intake, batch: Batch) -> list[Verdict]:
    """Every block's verdict, once the batch's write ended (if it has a message to store)."""
    if not batch.admitted:
        return cast(list[Verdict], batch.verdicts)
    ended: asyncio.Future[Storing] = asyncio.get_running_loop().create_future()
    intake.store(batch, ended.set_result)
    return (await ended).verdicts()
