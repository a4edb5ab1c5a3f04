"""Reading a `/metrics` answer the way Prometheus does (prometheus_client's own parser)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) → value, for every sample of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the exposition does not have it."""
    return samples(text).get((name, frozenset(labels.items())))


def labelled(text: str, name: str, label: str) -> dict[str, float]:
    """label value → sample value, for every sample of `name` (one label varying)."""
    return {
        dict(labels)[label]: found
        for (sample, labels), found in samples(text).items()
        if sample == name and found
    }
