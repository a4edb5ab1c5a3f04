"""A `fhir` destination in a configuration file: read like any section, every mistake
named by file and key, and what `check` warns about before messages are lost to it."""

from __future__ import annotations

from pathlib import Path

from engine.config.settings import load_config
from engine.delivery.kind import kind_of
from tests.support.cli import run_cli
from tests.support.config_errors import config_error

ROUTE = """
[engine]
store = "sqlite:///engine.db"

[[routes]]
name = "adt"
listen = "127.0.0.1:2575"
enrich = false
"""


def write(tmp_path: Path, destinations: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(ROUTE + destinations, encoding="utf-8")
    return path


def test_a_fhir_table_makes_a_fhir_destination(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[routes.destinations]]
name = "eds"
accept = ["ADT^A28", "ADT^A31", "ADT^A01", "ADT^A04", "ADT^A05", "ADT^A40", "ADT^A47"]
fhir = { base_url = "https://eds.example/fhir/R4", local_system = "urn:oid:1.2.250.1.999.1.1" }
tls = { cert = "client.pem", key = "client.key" }
""",
    )
    (destination,) = load_config(path).routes[0].destinations
    kind = kind_of(destination)
    assert kind is not None and kind.name == "fhir"
    settings = destination.kind_tables["fhir"]
    assert kind.target(settings) == "https://eds.example/fhir/R4"
    assert settings.action("A31") == "update"
    assert settings.action("A40") == "merge"
    assert settings.action("A47") == "change"
    assert settings.action("A08") is None  # only when listed
    assert destination.tls is not None and destination.tls.cert == str(tmp_path / "client.pem")


def test_one_kind_per_destination(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[routes.destinations]]
name = "eds"
mllp = "127.0.0.1:3000"
fhir = { base_url = "https://eds.example/fhir/R4" }
""",
    )
    error = config_error(path)
    assert error.key == "routes[0].destinations[0].mllp"
    assert "fhir = { ... }" in error.expected


def test_every_mistake_of_the_table_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[routes.destinations]]
name = "eds"

[routes.destinations.fhir]
base_url = "eds.example"
local_system = "1.2.3"
update_events = ["A28", "28"]
merge_events = ["A28"]
oauth = { token_url = "x", client_id = "", client_secret_env = "S" }
""",
    )
    proc = run_cli("check", "--config", str(path))
    assert proc.status == 2
    table = "routes[0].destinations[0].fhir"
    for key in (
        "base_url",
        "local_system",
        "update_events[1]",
        "merge_events[0]",
        "oauth.token_url",
        "oauth.client_id",
    ):
        assert f"{table}.{key}:" in proc.err
    assert "Traceback" not in proc.err


def test_check_warns_of_events_the_feed_would_not_send(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[routes.destinations]]
name = "everything"
fhir = { base_url = "https://eds.example/fhir/R4" }

[[routes.destinations]]
name = "too-few"
accept = ["ADT^A28"]

[routes.destinations.fhir]
base_url = "https://eds.example/fhir/R4"
update_events = ["A28", "A31"]
merge_events = []
change_events = []
""",
    )
    proc = run_cli("check", "--config", str(path))
    assert proc.status == 0, proc.err
    lines = proc.err.splitlines()
    assert any(
        "destinations[0].accept: takes events the FHIR feed does not send" in line for line in lines
    )
    assert any("destinations[1].accept: leaves out ADT^A31" in line for line in lines)


def test_a_missing_client_secret_stops_the_start(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[routes.destinations]]
name = "eds"
accept = ["ADT^A28"]

[routes.destinations.fhir]
base_url = "https://eds.example/fhir/R4"
update_events = ["A28"]
merge_events = []
change_events = []

[routes.destinations.fhir.oauth]
token_url = "https://idp.example/token"
client_id = "ins-engine"
client_secret_env = "INS_ENGINE_TEST_UNSET_SECRET"
""",
    )
    proc = run_cli("check", "--config", str(path))
    assert proc.status == 2
    assert (
        "routes[0].destinations[0].fhir.oauth.client_secret_env: set the client secret in the "
        "environment variable INS_ENGINE_TEST_UNSET_SECRET" in proc.err
    )
