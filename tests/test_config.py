"""Configuration errors name the file, the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.config.settings import documented_keys, load_config
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:2575"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


def test_the_shipped_default_configuration_is_valid() -> None:
    config = load_config(ROOT / "routes" / "default.toml")
    assert config.engine.store == f"sqlite:///{ROOT / 'var' / 'ins-engine.db'}"
    assert config.insi.simulator and config.insi.url is None
    lab, pas, warehouse = config.routes
    assert (pas.name, pas.listen, lab.name, lab.listen, warehouse.name, warehouse.listen) == (
        "pas-ehr",
        "127.0.0.1:2575",
        "lab-results",
        "127.0.0.1:2576",
        "pas-warehouse",
        "127.0.0.1:2577",
    )
    assert pas.source.endswith("pas-ehr.route.toml")
    assert [step.kind for step in pas.step_list()] == ["filter", "ins_enrich"]
    assert pas.destinations[0].file == str(ROOT / "var" / "outbox" / "ehr")
    assert config.http is not None, "make run shows the console"
    assert (config.http.listen, config.http.users, config.http.api_route) == (
        "127.0.0.1:8080",
        str(ROOT / "routes" / "users.toml"),
        "pas-ehr",
    )


def test_the_keys_operations_scripts_rely_on_work_as_written(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            (
                '[engine]\nstore = "sqlite:////var/lib/ins-engine/engine.db"\n'
                "[insi]\nsimulator = true\n"
                '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:2575"\n'
                '[[routes.destinations]]\nname = "downstream"\nmllp = "127.0.0.1:2576"\n'
            ),
        )
    )
    assert config.engine.store.endswith("////var/lib/ins-engine/engine.db")
    assert config.routes[0].destinations[0].name == "downstream"


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (MINIMAL + "colour = 'blue'\n", "routes[0].colour", "unknown key"),
        ("[engine]\nstorage = 'x'\n" + MINIMAL, "engine.storage", "unknown key"),
        ("[engine]\nstore = 'mysql://x'\n" + MINIMAL, "engine.store", "postgresql://"),
        (
            "[engine]\nstore = 'postgresql://engine:secret@db:5432/ins'\n" + MINIMAL,
            "engine.store",
            "no password in the URL",
        ),
        (
            "[engine]\nstore = 'postgresql://engine@db/ins?password=secret'\n" + MINIMAL,
            "engine.store",
            "no password in the URL",
        ),
        ("[engine]\nlease_s = 0.1\n" + MINIMAL, "engine.lease_s", "seconds from 1"),
        (MINIMAL.replace('"127.0.0.1:2575"', '"nowhere"'), "routes[0].listen", "host:port"),
        (MINIMAL + "max_connections = 'ten'\n", "routes[0].max_connections", "an integer"),
        (MINIMAL + "max_connections = true\n", "routes[0].max_connections", "an integer"),
        (MINIMAL + "accept = 'ADT^*'\n", "routes[0].accept", "an array"),
        (MINIMAL + "charset = 'KLINGON'\n", "routes[0].charset", "MSH-18"),
        # Python codec names are not MSH-18 values: the route keys take the table's only.
        (MINIMAL + "charset = 'utf-16'\n", "routes[0].charset", "MSH-18"),
        (MINIMAL + "default_charset = 'undefined'\n", "routes[0].default_charset", "MSH-18"),
        (MINIMAL + "fallback_charset = 'idna'\n", "routes[0].fallback_charset", "MSH-18"),
        (MINIMAL + "allow = ['not-an-ip']\n", "routes[0].allow[0]", "IP address"),
        ('[[routes]]\nname = "adt"\n', "routes[0].listen", "required"),
        ("[engine]\n", "routes", "at least one"),
        (
            MINIMAL + '[[routes.destinations]]\nname = "d"\n',
            "routes[0].destinations[0].mllp",
            "exactly one of",
        ),
        (
            MINIMAL + '[[routes.destinations]]\nname = "d"\nmllp = "h:1"\non_failure = "drop"\n',
            "routes[0].destinations[0].on_failure",
            "park",
        ),
        (
            MINIMAL
            + '[[routes.destinations]]\nname = "d"\nmllp = "h:1"\nmax_mismatched_acks = 0\n',
            "routes[0].destinations[0].max_mismatched_acks",
            ">= 1",
        ),
        (
            MINIMAL + "[routes.enrichment]\nevents = ['A47']\n",
            "routes[0].enrichment.events",
            "A40/A47",
        ),
        ("[insi]\nurl = 'http://insi.example/lps'\n" + MINIMAL, "insi.url", "https"),
        (MINIMAL + MINIMAL, "routes[1].name", "unique"),
        (MINIMAL + "[[routes.steps]]\nkind = 'teleport'\n", "routes[0].steps[0].kind", "one of "),
        (MINIMAL + "[[routes.steps]]\nname = 'x'\n", "routes[0].steps[0].kind", "kind"),
        (
            MINIMAL + "[[routes.steps]]\nkind = 'ins_enrich'\nevents = ['A47']\n",
            "routes[0].steps[0].events",
            "A40/A47",
        ),
        (
            MINIMAL + "[[routes.steps]]\nkind = 'ins_enrich'\nevent = ['A28']\n",
            "routes[0].steps[0].event",
            "known keys: before_ack, events, kind, name,",
        ),
        (
            MINIMAL + "[[routes.steps]]\nkind = 'ins_enrich'\nbefore_ack = true\n",
            "routes[0].steps[0].before_ack",
            "run before the ACK",
        ),
        (
            MINIMAL + "enrich = false\n[[routes.steps]]\nkind = 'ins_enrich'\n",
            "routes[0].enrich",
            "leave it out with steps",
        ),
        (
            MINIMAL
            + "[[routes.steps]]\nkind = 'ins_enrich'\n[[routes.steps]]\nkind = 'ins_enrich'\n",
            "routes[0].steps[1].name",
            "unique",
        ),
        (
            MINIMAL + "[[routes.steps]]\nkind = 'ins_enrich'\nname = 'INS check'\n",
            "routes[0].steps[0].name",
            "letters, digits",
        ),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    error = error_for(tmp_path, text)
    assert error.file.endswith("engine.toml")
    assert error.key == key
    assert expected in error.expected
    assert str(error).startswith(f"{error.file}: {key}: ")


def test_a_route_naming_no_steps_has_the_enrichment_step_of_earlier_versions(
    tmp_path: Path,
) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL.replace("adt", "a")
            + "[routes.enrichment]\nevents = ['A28']\n"
            + MINIMAL.replace("adt", "b").replace("2575", "2576")
            + "enrich = false\n"
            + MINIMAL.replace("adt", "c").replace("2575", "2577")
            + "[[routes.steps]]\nkind = 'ins_enrich'\nname = 'ins'\nsearch_provisional = true\n",
        )
    )
    a, b, c = (route.step_list() for route in config.routes)
    assert [(s.kind, s.name, s.settings.events) for s in a] == [
        ("ins_enrich", "ins_enrich", ["A28"])
    ]
    assert b == []
    assert [(s.kind, s.name, s.settings.search_provisional) for s in c] == [
        ("ins_enrich", "ins", True)
    ]


def test_every_error_of_a_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    error = error_for(
        tmp_path,
        "[engine]\nlog_level = 'loud'\nretention_days = 'long'\n"
        + MINIMAL.replace('"127.0.0.1:2575"', '"nowhere"')
        + "max_connections = 'ten'\ncolour = 'blue'\n"
        + '[[routes.destinations]]\nname = "d"\nmllp = "h:1"\non_failure = "drop"\n',
    )
    lines = str(error).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "engine.retention_days",
        "engine.log_level",
        "routes[0].colour",
        "routes[0].max_connections",
        "routes[0].destinations[0].on_failure",
        "routes[0].listen",
    ]
    assert all(line.startswith(f"{error.file}: ") for line in lines)
    # The first error keeps the fields a caller expecting one error reads.
    assert (error.key, error.expected) == ("engine.retention_days", "a number")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[engine\n", "line 1, column 8: not valid TOML: Expected ']' at the end of a table"),
        (MINIMAL + "accept = 'ADT^*'\n", "routes[0].accept: an array of strings"),
        ("routes = 3\n", "routes: an array of tables"),
    ],
)
def test_messages_read_as_sentences(tmp_path: Path, text: str, message: str) -> None:
    assert f"engine.toml: {message}" in str(error_for(tmp_path, text))


def test_a_missing_file_is_named_without_a_placeholder_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nowhere.toml")
    assert str(caught.value) == f"{tmp_path / 'nowhere.toml'}: no such configuration file"


def test_the_store_path_is_relative_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)  # another working directory: it must not matter
    config = load_config(write(folder, '[engine]\nstore = "sqlite:///../var/x.db"\n' + MINIMAL))
    assert config.engine.store == f"sqlite:///{tmp_path / 'var' / 'x.db'}"
    absolute = load_config(write(folder, '[engine]\nstore = "sqlite:////srv/x.db"\n' + MINIMAL))
    assert absolute.engine.store == "sqlite:////srv/x.db"


def test_relative_tls_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + '[routes.tls]\ncert = "c.pem"\nkey = "k.pem"\n'))
    assert config.routes[0].tls.cert == str(tmp_path / "c.pem")


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    valid = MINIMAL + '[[routes.destinations]]\nname = "d"\nmllp = "127.0.0.1:2576"\n'
    assert main(["check", "--config", str(write(tmp_path, valid))]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["check", "--config", str(write(tmp_path, MINIMAL + "x = 1\n"))]) == 2
    assert "routes[0].x: unknown key" in capsys.readouterr().err
    assert main(["check", "--config", str(tmp_path / "missing.toml")]) == 2
    capsys.readouterr()
    assert main(["check", "--config", str(write(tmp_path, MINIMAL + "x = 1\ny = 2\n"))]) == 2
    x, y = capsys.readouterr().err.splitlines()
    assert x.startswith(f"ins-engine check: {tmp_path / 'engine.toml'}: routes[0].x: unknown key")
    assert y.startswith(f"ins-engine check: {tmp_path / 'engine.toml'}: routes[0].y: unknown key")


def test_every_key_is_documented() -> None:
    rows = documented_keys()
    assert all(doc for _, _, doc in rows), [key for key, _, doc in rows if not doc]
    keys = {key for key, _, _ in rows}
    assert {"engine.store", "insi.url", "routes.listen", "routes.destinations.mllp"} <= keys


def test_the_default_store_is_relative_to_the_file_too(tmp_path: Path) -> None:
    """No `store` key (or no [engine] table): var/ins-engine.db beside the file, never in the
    working directory."""
    folder = tmp_path / "conf"
    folder.mkdir()
    config = folder / "engine.toml"
    config.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        '[[routes.destinations]]\nname = "d"\nfile = "out"\n',
        encoding="utf-8",
    )
    expected = f"sqlite:///{folder.resolve() / 'var' / 'ins-engine.db'}"
    assert load_config(config).engine.store == expected
    config.write_text('[engine]\nlog_level = "info"\n' + config.read_text(), encoding="utf-8")
    assert load_config(config).engine.store == expected
