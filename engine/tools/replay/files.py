"""From command-line paths to the messages to send, each tied to its file and position.

Every file is read and checked in full before anything is sent, so a file that cannot be
read, or that holds a message without a usable header, is reported by name and none of it
goes out. Only the header is looked at: the bytes are sent as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import CliError, EngineError
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.tools.replay.reader import Layout, ReadError, read_messages

# Documentation and configuration kept beside a corpus are not message files.
SKIPPED_SUFFIXES = frozenset({".md", ".rst", ".toml", ".json", ".yaml", ".yml"})


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """A message to send; `control_id` (MSH-10) is what its ACK must echo in MSA-2."""

    file: str
    position: int
    payload: bytes
    control_id: str
    message_type: str


@dataclass(frozen=True, slots=True)
class ReplayFile:
    path: str
    layout: Layout
    messages: list[ReplayMessage]


@dataclass(frozen=True, slots=True)
class FileProblem:
    """Why a file is not sent; the reason names positions, never content."""

    path: str
    reason: str


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files named, then files under folders (recursively, sorted), each once.

    Inside folders, hidden entries and documentation/configuration files are skipped; a
    file named on the command line is always read.
    """
    found: dict[Path, None] = {}
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files = sorted(
                candidate
                for candidate in path.rglob("*")
                if candidate.is_file()
                and candidate.suffix.lower() not in SKIPPED_SUFFIXES
                and not any(part.startswith(".") for part in candidate.relative_to(path).parts)
            )
            if not files:
                raise CliError(f"no message file under {text}")
            found.update(dict.fromkeys(files))
        elif path.exists():
            found[path] = None
        else:
            raise CliError(f"no such file or folder: {text}")
    return list(found)


def load_file(path: Path) -> ReplayFile | FileProblem:
    """Read one file and check every message's header."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        return FileProblem(name, f"unreadable: {error.strerror or type(error).__name__}")
    try:
        content = read_messages(data)
        messages = [_checked(name, raw.position, raw.payload) for raw in content.messages]
    except EngineError as error:
        return FileProblem(name, str(error))
    return ReplayFile(name, content.layout, messages)


def load_files(paths: Iterable[Path]) -> tuple[list[ReplayFile], list[FileProblem]]:
    files: list[ReplayFile] = []
    problems: list[FileProblem] = []
    for path in paths:
        loaded = load_file(path)
        if isinstance(loaded, ReplayFile):
            files.append(loaded)
        else:
            problems.append(loaded)
    return files, problems


def _checked(file: str, position: int, payload: bytes) -> ReplayMessage:
    # Latin-1 maps every byte to one character, so the ASCII header fields read right
    # whatever MSH-18 says, and no charset problem stops a replay meant to test one.
    try:
        header = Header.from_message(Message.parse(payload.decode("latin-1")))
    except EngineError as error:
        raise ReadError(f"message {position}: {error}") from None
    if not header.control_id:
        raise ReadError(f"message {position}: MSH-10 (message control id) is empty")
    if not header.message_type:
        raise ReadError(f"message {position}: MSH-9 (message type) is empty")
    return ReplayMessage(file, position, payload, header.control_id, header.type_and_trigger)
