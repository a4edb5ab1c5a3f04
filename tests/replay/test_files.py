"""From paths to checked messages: folder order, skipped files, files refused whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import CliError
from engine.tools.replay.files import FileProblem, ReplayFile, expand_paths, load_file, load_files
from engine.tools.replay.reader import Layout

MSG = b"MSH|^~\\&|APP|FAC|||20240101||ADT^A28^ADT_A05|%s|P|2.5\rPID|||1^^^H^PI\r"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_are_walked_recursively_in_sorted_path_order(tmp_path: Path) -> None:
    for name in ("b/2.hl7", "a.hl7", "b/10.hl7", "c", ".hidden.hl7", ".git/x.hl7"):
        write(tmp_path / name, MSG % b"1")
    write(tmp_path / "README.md", b"# doc")
    write(tmp_path / "expectations.toml", b"")
    found = [path.relative_to(tmp_path).as_posix() for path in expand_paths([str(tmp_path)])]
    assert found == ["a.hl7", "b/10.hl7", "b/2.hl7", "c"]


def test_named_files_keep_their_order_and_come_once(tmp_path: Path) -> None:
    z = write(tmp_path / "z.md", MSG % b"1")
    a = write(tmp_path / "a.hl7", MSG % b"2")
    assert expand_paths([str(z), str(tmp_path), str(a)]) == [z, a]


def test_missing_path_and_empty_folder_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no such file or folder"):
        expand_paths([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CliError, match="no message file under"):
        expand_paths([str(tmp_path / "empty")])


def test_loaded_messages_carry_file_position_control_id_and_type(tmp_path: Path) -> None:
    path = write(tmp_path / "two.hl7", MSG % b"X1" + b"\n" + MSG % b"X2")
    loaded = load_file(path)
    assert isinstance(loaded, ReplayFile)
    assert loaded.layout is Layout.TEXT
    assert [(m.file, m.position, m.control_id, m.message_type) for m in loaded.messages] == [
        (str(path), 1, "X1", "ADT^A28"),
        (str(path), 2, "X2", "ADT^A28"),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no HL7 message"),
        (MSG % b"OK" + MSG % b"", "message 2: MSH-10 (message control id) is empty"),
        (b"MSH|^~\\&|APP|FAC|||20240101|||ID|P|2.5\r", "message 1: MSH-9"),
        (b"MSH|\r", "message 1: invalid MSH-1/MSH-2"),  # MSH-1 and no MSH-2
        (MSG % b"OK" + b"MSH|^^~\\|x\r", "message 2: invalid MSH-1/MSH-2"),
    ],
)
def test_a_bad_message_refuses_the_whole_file(tmp_path: Path, data: bytes, reason: str) -> None:
    path = write(tmp_path / "bad.hl7", data)
    problem = load_file(path)
    assert isinstance(problem, FileProblem)
    assert reason in problem.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.hl7", MSG % b"1")
    path.chmod(0)
    problem = load_file(path)
    assert isinstance(problem, FileProblem)
    assert problem.reason.startswith("unreadable")


def test_a_folder_given_as_a_file_is_a_problem(tmp_path: Path) -> None:
    files, problems = load_files([tmp_path])
    assert files == []
    assert [problem.path for problem in problems] == [str(tmp_path)]
    assert problems[0].reason.startswith("unreadable")
