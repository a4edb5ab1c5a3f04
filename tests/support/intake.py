"""One block through a route's intake, as the listener hands over a read holding only it."""

from __future__ import annotations

from engine.inbound.intake import Intake, Verdict
from engine.mllp.codec import Frame


async def receive(intake: Intake, payload: bytes, peer: str = "127.0.0.1:1") -> Verdict:
    (verdict,) = await intake.store(intake.admit([Frame(payload)], peer))
    return verdict
