"""Enrichment without a listener or a store: message files in, enriched files out.

The route's `EnrichStep` runs as it does in the engine: the same decoding
(`engine.router.routed_message`), the same step, the INSi of `[insi]` with an in-memory
result cache, a window of messages enriched concurrently. Every input file is read and
decoded before the first INSi call, so an unreadable file stops the run before anything is
written. Each input file gives one output file at the same relative path, holding its
messages in the same order, each CR-terminated in the charset it was read with; MLLP
framing and batch envelopes are not written back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import RouteSettings
from engine.enrich.step import IDENTITY_ANNOTATION, EnrichStep
from engine.errors import CliError, EngineError
from engine.folders import make_folders
from engine.ins.errors import InsiConfigurationError
from engine.ins.service import open_insi_service
from engine.ins.settings import InsiSettings
from engine.logs import get_logger
from engine.pipeline import RoutedMessage
from engine.private_files import open_private
from engine.replay.files import FileProblem, expand_paths, load_file
from engine.router import WINDOW, RoutePlan, routed_message
from engine.store.base import IdentityRecord

log = get_logger("engine.offline")


@dataclass(frozen=True, slots=True)
class InputFile:
    """A message file, where its output goes (relative to the output folder), its messages."""

    source: Path
    target: Path
    messages: list[RoutedMessage]


@dataclass(slots=True)
class Summary:
    """What a run did, without patient data: counts only."""

    files: int
    messages: int
    simulated: bool
    outcomes: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    failed: int = 0  # the step raised: the message was written as read


def output_targets(paths: Sequence[str]) -> list[tuple[Path, Path]]:
    """(input file, output path relative to the output folder) for each file to read: the
    path inside a folder argument, or the bare name of a file argument."""
    targets: dict[Path, Path] = {}
    for text in paths:
        root = Path(text)
        for source in expand_paths([text]):
            target = source.relative_to(root) if root.is_dir() else Path(source.name)
            if source in targets:
                continue
            if target in targets.values():
                raise CliError(f"two input files would both be written to {target}")
            targets[source] = target
    return list(targets.items())


def check_outputs(targets: Iterable[tuple[Path, Path]], out_dir: Path, force: bool) -> None:
    """Fail before any INSi call when an output would replace an input, or, without
    `force`, a file that exists."""
    for source, target in targets:
        path = out_dir / target
        if path.resolve() == source.resolve():
            raise CliError(f"{path} would replace its own input: choose another --out")
        if not force and path.exists():
            raise CliError(f"{path} already exists: choose another --out or add --force")


def read_inputs(
    targets: Iterable[tuple[Path, Path]], route: RouteSettings
) -> tuple[list[InputFile], list[FileProblem]]:
    """Read and decode every file; a file with a problem is reported, not processed."""
    charsets = RoutePlan(route, ()).charsets
    ids = itertools.count(1)
    files: list[InputFile] = []
    problems: list[FileProblem] = []
    for source, target in targets:
        loaded = load_file(source)
        if isinstance(loaded, FileProblem):
            problems.append(loaded)
            continue
        messages: list[RoutedMessage] = []
        for message in loaded.messages:
            try:
                messages.append(routed_message(next(ids), route.name, message.payload, charsets))
            except EngineError as error:  # charset or structure: the engine would refuse it
                problems.append(FileProblem(str(source), f"message {message.position}: {error}"))
                break
        else:
            files.append(InputFile(source, target, messages))
    return files, problems


async def enrich(files: Sequence[InputFile], route: RouteSettings, insi: InsiSettings) -> Summary:
    """Run the route's enrichment step over every message, a window at a time."""
    try:
        service = await open_insi_service(insi)
    except InsiConfigurationError as error:
        raise CliError(str(error)) from None
    messages = [message for file in files for message in file.messages]
    summary = Summary(len(files), len(messages), service.simulated)
    step = EnrichStep(route.enrichment, service)
    try:
        for start in range(0, len(messages), WINDOW):
            window = messages[start : start + WINDOW]
            done = await asyncio.gather(*(_apply(step, message) for message in window))
            summary.failed += done.count(False)
    finally:
        await service.aclose()
    for message in messages:
        record = message.annotations[IDENTITY_ANNOTATION]
        summary.outcomes[record["outcome"]] += 1
        summary.calls += record.get("calls", 0)
    return summary


async def _apply(step: EnrichStep, routed: RoutedMessage) -> bool:
    """Enrich one message; if the step fails, keep it as read, as the engine forwards it."""
    try:
        await step(routed)
    except Exception as error:
        log.error(
            "enrichment failed, message written as read",
            route=routed.route,
            control_id=routed.header.control_id,
            exc_info=error,
        )
        routed.changed = False
        routed.annotations[IDENTITY_ANNOTATION] = {
            "outcome": "error",
            "detail": type(error).__name__,
        }
        return False
    return True


def write_outputs(files: Iterable[InputFile], out_dir: Path, force: bool) -> None:
    """One 0600 file per input file: its messages, in order, as the engine would send them."""
    for file in files:
        path = out_dir / file.target
        try:
            make_folders(path.parent)
        except OSError as error:
            raise CliError(f"cannot create {path.parent}: {error.strerror}") from None
        with open_private(path, force) as output:
            output.write(b"".join(message.output() for message in file.messages))


def identity_records(
    files: Iterable[InputFile], read_at: float, outcomes: frozenset[str] | None
) -> list[IdentityRecord]:
    """The messages' outcomes (only `outcomes` unless None) in the store's shape, for the
    same report as the engine's."""
    return [
        IdentityRecord(
            message.message_id,
            read_at,
            message.route,
            message.header.control_id,
            message.header.type_and_trigger,
            message.annotations[IDENTITY_ANNOTATION],
        )
        for file in files
        for message in file.messages
        if outcomes is None or message.annotations[IDENTITY_ANNOTATION]["outcome"] in outcomes
    ]
