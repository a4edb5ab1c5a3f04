"""The [insi] settings: field types the loader understands, and cross-field problems."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from engine.ins.settings import InsiSettings

ALLOWED_TYPES = {str, int, float, bool, str | None, list[str]}


def test_every_field_has_an_allowed_type_a_default_and_a_doc_line() -> None:
    hints = typing.get_type_hints(InsiSettings)
    for spec in dataclasses.fields(InsiSettings):
        assert hints[spec.name] in ALLOWED_TYPES, spec.name
        assert spec.default is not dataclasses.MISSING, spec.name
        assert spec.metadata["doc"], spec.name
    paths = {s.name for s in dataclasses.fields(InsiSettings) if s.metadata.get("path")}
    assert paths == {"cert", "key", "pkcs12", "ca", "simulator_persons"}


def test_defaults_mean_the_in_process_simulator() -> None:
    settings = InsiSettings()
    assert settings.in_process and settings.simulator and settings.problems() == []


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"url": "http://insi.example.org/lps", "simulator": False, "idam": "X"}, "url"),
        ({"url": "ftp://127.0.0.1/lps"}, "url"),
        ({"url": "https://user:pw@127.0.0.1/lps"}, "url"),
        ({"url": "https://services-ps-tlsm.ameli.fr/lps", "cert": "/c", "key": "/k"}, "simulator"),
        ({"url": "https://services-ps-tlsm.ameli.fr/lps", "simulator": False, "idam": "X"}, "cert"),
        (
            {"url": "https://services-ps-tlsm.ameli.fr/lps", "simulator": False, "pkcs12": "/p"},
            "idam",
        ),
        ({"simulator": False}, "url"),
        ({"cert": "/c"}, "key"),
        ({"cert": "/c", "key": "/k", "pkcs12": "/p"}, "pkcs12"),
        ({"instance_id": "not-a-uuid"}, "instance_id"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"simulator_fault_rate": 1.5}, "simulator_fault_rate"),
    ],
)
def test_problems_name_the_key(changes: dict[str, object], key: str) -> None:
    problems = InsiSettings(**changes).problems()  # type: ignore[arg-type]
    assert key in [k for k, _ in problems], problems


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8089/lps", "http://[::1]:8089/lps", "http://localhost:8089/lps"]
)
def test_plain_http_is_fine_on_loopback(url: str) -> None:
    assert InsiSettings(url=url).problems() == []


def test_production_settings_are_accepted() -> None:
    settings = InsiSettings(
        url="https://services-ps-tlsm.ameli.fr/lps",
        simulator=False,
        pkcs12="/etc/ins-engine/insi.p12",
        ca="/etc/ins-engine/igc.pem",
        idam="IDAM-42",
    )
    assert settings.problems() == []
