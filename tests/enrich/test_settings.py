"""EnrichSettings: defaults are valid, each inconsistency names its key."""

import pytest

from engine.enrich.settings import DEFAULT_EVENTS, EnrichSettings


def test_defaults_are_valid_and_documented() -> None:
    settings = EnrichSettings()
    assert settings.problems() == []
    assert settings.events == list(DEFAULT_EVENTS)
    fields = EnrichSettings.__dataclass_fields__.values()
    assert all(field.metadata.get("doc") for field in fields)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"events": []}, "events"),
        ({"events": ["A01", "A47"]}, "events"),
        ({"events": ["A40"]}, "events"),
        ({"events": ["a01"]}, "events"),
        ({"retry_window_s": -1.0}, "retry_window_s"),
        ({"retry_backoff_s": 0.0}, "retry_backoff_s"),
        ({"retry_backoff_s": 4.0, "retry_backoff_max_s": 2.0}, "retry_backoff_max_s"),
    ],
)
def test_problems_name_the_key(changes: dict[str, object], key: str) -> None:
    assert key in [found for found, _ in EnrichSettings(**changes).problems()]  # type: ignore[arg-type]


def test_a08_may_be_added_for_non_french_feeds() -> None:
    assert EnrichSettings(events=[*DEFAULT_EVENTS, "A08"]).problems() == []
