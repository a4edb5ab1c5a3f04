"""`DescriptorWatch`: an episode without a free descriptor is logged once, counted at each
probe and shown while it lasts (a probe and a clock injected; the real engine's case is in
tests/http/test_descriptor_reserve.py)."""

from __future__ import annotations

from structlog.testing import capture_logs

from engine.app.descriptors import QUIET_S, DescriptorWatch, descriptor_free
from engine.base.metrics import EngineMetrics


def test_an_episode_without_descriptors_is_logged_once_and_counted_at_each_probe() -> None:
    metrics = EngineMetrics()
    now = [0.0]
    answers = ["EMFILE"] * 5 + [""] * 3 + ["EMFILE"]
    watch = DescriptorWatch(metrics, probe=lambda: answers.pop(0), clock=lambda: now[0])
    with capture_logs() as logs:
        for _ in range(5):
            watch.check()
            assert watch.exhausted
            now[0] += 1.0
        for _ in range(3):
            watch.check()
            now[0] += 1.0
        assert not watch.exhausted, f"{QUIET_S} s without a failure end the episode"
        watch.check()
    assert [(entry["event"], entry["error"]) for entry in logs] == [
        ("out of file descriptors", "EMFILE"),
        ("out of file descriptors", "EMFILE"),
    ], "one line per episode: two episodes"
    assert metrics.totals("ins_engine_descriptors_exhausted") == [({"error": "EMFILE"}, 6.0)]


def test_the_probe_finds_a_descriptor_free_in_a_process_that_has_some() -> None:
    assert descriptor_free() == ""
