"""The listener's intake and the embedding API take and refuse the same messages: for
generated headers (and bytes around them), the same verdict, ACK code and ERR code."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.settings import RouteSettings
from engine.embed import Processed, RouteRunner
from engine.hl7.ack import AckError, ErrorCode, Outcome, Refusal
from engine.inbound.intake import Intake, Verdict
from engine.routing.route import RoutePlan
from engine.steps.kind import Resources
from engine.steps.pipeline import BoundStep, RoutedMessage, StepResult
from engine.store.sqlite import SqliteStore
from tests.conftest import fixed_acks
from tests.support.intake import receive

ROUTE = RouteSettings(name="adt", listen="127.0.0.1:0", accept=["ADT^A28", "ADT^A31"])


def by_processing_id(routed: RoutedMessage) -> StepResult:
    """A before-ACK step: MSH-11 `D` refused, `T` dropped, `X` a failing step."""
    processing_id = routed.message.msh.field(11)
    if processing_id == "X":
        raise ValueError("a bug")
    if processing_id == "D":
        error = AckError(ErrorCode.APPLICATION_INTERNAL_ERROR, "MSH^1^11", "debug refused")
        return StepResult("refused", refusal=Refusal(Outcome.ERROR, error))
    return StepResult("dropped" if processing_id == "T" else "kept", drop=processing_id == "T")


PLAN = RoutePlan(ROUTE, before_ack=[BoundStep("screen", "test", by_processing_id)])


@dataclass(frozen=True)
class Sample:
    message_type: str
    has_control_id: bool
    processing_id: str
    version: str
    accept_ack: str
    charset: str
    encoding: str
    prefix: bytes

    def payload(self, number: int) -> bytes:
        control_id = f"C{number}" if self.has_control_id else ""
        fields = [
            "MSH", "^~\\&", "PAS", "HOSP", "ENGINE", "HOSP", "20240101120000", "",
            self.message_type, control_id, self.processing_id, self.version,
            "", "", self.accept_ack, "", "", self.charset,
        ]  # fmt: skip
        segments = ["|".join(fields), "PID|1||12345^^^HOSP^PI||HÉLÈNE^ZOÉ||19700101|F"]
        return self.prefix + ("\r".join(segments) + "\r").encode(self.encoding)


def mostly(usual: object, *others: object) -> st.SearchStrategy[object]:
    """`usual` three times in four, so that messages also get through to be accepted."""
    return st.one_of(st.just(usual), st.just(usual), st.just(usual), st.sampled_from(others))


samples = st.builds(
    Sample,
    message_type=mostly("ADT^A28^ADT_A05", "ADT^A31", "ADT^A01", "ORU^R01", "ACK", "ACK^A28", ""),
    has_control_id=mostly(True, False),
    processing_id=mostly("P", "T", "D", "X"),
    version=mostly("2.5^FRA^2.11", "2.5", "2.3.1", "3.0", ""),
    accept_ack=st.sampled_from(["", "AL", "NE", "ER", "SU"]),
    charset=mostly("8859/1", "", "UNICODE UTF-8", "ASCII", "KLINGON"),
    encoding=mostly("latin-1", "utf-8"),
    prefix=mostly(b"", b"not HL7\r", b"\xff\xfe"),
)


def err_code(verdict: Verdict) -> str:
    return verdict.reason.split(" ", 1)[0]


def assert_same(verdict: Verdict, processed: Processed) -> None:
    if verdict.reason == "ack-ignored":
        assert processed.ack is None and processed.refusal is None
        return
    assert verdict.ack_code == processed.ack
    refusal = processed.refusal
    assert (verdict.outcome is not Outcome.ACCEPTED) == (refusal is not None)
    if refusal is not None:
        assert verdict.outcome is refusal.outcome
        assert err_code(verdict) == str(refusal.error.code.value)


def test_the_intake_and_the_embedding_api_give_the_same_verdict(tmp_path: Path) -> None:
    numbers = itertools.count(1)  # each message its own control id: no duplicates
    with asyncio.Runner() as loop:
        store = loop.run(SqliteStore.open(str(tmp_path / "engine.db")))
        intake = Intake(ROUTE, store, fixed_acks(), PLAN)
        runner = RouteRunner(PLAN, Resources())

        @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(samples)
        def same_verdict(sample: Sample) -> None:
            payload = sample.payload(next(numbers))
            verdict = loop.run(receive(intake, payload))
            assert_same(verdict, loop.run(runner.process(payload)))

        try:
            same_verdict()
        finally:
            loop.run(store.close())
