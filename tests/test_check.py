"""`ins-engine check`: every error of the engine file and of every route file
in one run, and warnings for `accept` lists that let the configuration load but refuse or
starve traffic, each naming the pattern that would do."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Ran, run_cli

ROUTE = 'name = "{name}"\nlisten = "127.0.0.1:{port}"\naccept = {accept}\n{extra}'
FILE_DESTINATION = '[[destinations]]\nname = "out"\nfile = "out"\naccept = {accept}\n'


def check(config: Path) -> Ran:
    return run_cli("check", "--config", str(config))


def layout(folder: Path, engine: str, **routes: str) -> Path:
    """An engine file naming `routes.d/*.toml`, and one route file per keyword."""
    (folder / "routes.d").mkdir()
    for name, text in routes.items():
        (folder / "routes.d" / f"{name}.toml").write_text(text, encoding="utf-8")
    config = folder / "engine.toml"
    config.write_text('route_files = ["routes.d/*.toml"]\n\n' + engine, encoding="utf-8")
    return config


def route(
    name: str, port: int, accept: str, destination_accept: str = '["*"]', extra: str = ""
) -> str:
    """A route file with one file destination; `extra`: more keys of the route."""
    return ROUTE.format(name=name, port=port, accept=accept, extra=extra) + (
        FILE_DESTINATION.format(accept=destination_accept)
    )


def test_every_error_of_the_engine_file_and_of_every_route_file_in_one_run(
    tmp_path: Path,
) -> None:
    engine = '[engine]\nretention_days = "thirty"\n\n[http]\nsession_idle_s = 60\n'
    config = layout(
        tmp_path,
        engine,
        a=route("a", 2575, '["ADT^*"]', extra='colour = "red"\n'),
        b=route("b", 2576, '["ADT^*"]') + 'max_attempts = "ten"\n',
        c="name = [unclosed\n",
    )
    answer = check(config)
    assert answer.status == 2
    assert "Traceback" not in answer.err
    found = [line.split(": ")[1:4] for line in answer.err.splitlines()]
    assert [(Path(file).name, key, text[:14]) for file, key, text in found] == [
        ("engine.toml", "engine.retention_days", "a number"),
        ("engine.toml", "http.listen", "a value (this "),
        ("a.toml", "colour", "unknown key (k"),
        ("b.toml", "destinations[0].max_attempts", "an integer"),
        ("c.toml", "line 1, column 9", "not valid TOML"),
    ]


def test_a_pattern_naming_no_event_is_a_warning_with_the_pattern_that_would_do(
    tmp_path: Path,
) -> None:
    config = layout(
        tmp_path,
        "",
        a=route(
            "a", 2575, '["ADT", "ORU^R01"]', destination_accept='["ORU^"]', extra="enrich = false\n"
        ),
    )
    answer = check(config)
    assert answer.status == 0, answer.err
    file = tmp_path / "routes.d" / "a.toml"
    assert answer.err.splitlines() == [
        f'warning: {file}: accept[0]: "ADT" matches no TYPE^EVENT: MSH-9 is read as '
        'ADT^<event>, so every ADT message is refused (AR, ERR 201); "ADT^*" takes them all',
        f'warning: {file}: destinations[0].accept[0]: "ORU^" matches no TYPE^EVENT: MSH-9 is '
        'read as ORU^<event>, so no ORU message reaches this destination; "ORU^*" takes them all',
    ]


def test_an_accept_taking_none_of_the_events_a_step_acts_on_is_a_warning(tmp_path: Path) -> None:
    ins_step = 'kind = "ins_enrich"\nname = "ins"\n'
    config = layout(
        tmp_path,
        "",
        results=route("results", 2575, '["ORU^R01"]'),  # enriches ADT by default: never runs
        adt=route("adt", 2576, '["ADT^*"]', destination_accept='["ADT^A08"]')
        + "[[destinations.steps]]\n"
        + ins_step,
        fine=route("fine", 2577, '["ADT^A28", "ADT^A31"]') + "[[steps]]\n" + ins_step,
    )
    answer = check(config)
    assert answer.status == 0, answer.err
    folder = tmp_path / "routes.d"
    events = "ADT^A01, ADT^A04, ADT^A05, ADT^A28, ADT^A31"
    assert answer.err.splitlines() == [
        f"warning: {folder / 'adt.toml'}: destinations[0].accept: takes none of the events "
        f'step ins acts on ({events}): it never runs; add "ADT^*"',
        f"warning: {folder / 'results.toml'}: accept: takes none of the events step "
        f'ins_enrich acts on ({events}): it never runs; add "ADT^*"',
    ]


def test_a_destination_event_its_route_refuses_is_a_warning(tmp_path: Path) -> None:
    config = layout(
        tmp_path,
        "",
        a=route(
            "a",
            2575,
            '["ADT^A28", "ADT^A31"]',
            destination_accept='["ADT^A31", "ADT^A08", "ADT^*", "ORU^R0?"]',
            extra="enrich = false\n",
        ),
        b=route("b", 2576, '["ORU^R01"]', destination_accept='["ADT^A28"]'),  # enriches
    )
    answer = check(config)
    assert answer.status == 0, answer.err
    folder = tmp_path / "routes.d"
    events = "ADT^A01, ADT^A04, ADT^A05, ADT^A28, ADT^A31"
    assert answer.err.splitlines() == [
        f"warning: {folder / 'a.toml'}: destinations[0].accept: the route refuses ADT^A08 (AR) "
        'before any destination: add "ADT^A08" to the route\'s accept',
        f"warning: {folder / 'b.toml'}: accept: takes none of the events step ins_enrich acts "
        f'on ({events}): it never runs; add "ADT^*"',
        f"warning: {folder / 'b.toml'}: destinations[0].accept: the route refuses ADT^A28 (AR) "
        'before any destination: add "ADT^A28" to the route\'s accept',
    ]
