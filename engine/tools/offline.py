"""Enrichment without a listener or a store: message files in, enriched files out.

The route runs as in the engine, through the embedding API (`engine.embed`): the same
decoding, the same steps (with the INSi of `[insi]` and an in-memory result cache), a window
of messages processed concurrently. Every input file is read and decoded before the first
INSi call, so an unreadable file stops the run before anything is written. Each input file
gives one output file at the same relative path, holding its messages after the route's
steps (before any destination's own steps), in the same order, each CR-terminated in the
charset it was read with; a message the route's steps drop or refuse is left out. MLLP
framing and batch envelopes are not written back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from engine.base.folders import make_folders
from engine.base.private_files import open_private
from engine.embed import Processed, RouteRunner
from engine.enrich.store import GUARD_KIND, KIND, IdentityRecord
from engine.errors import CliError
from engine.inbound.admission import Readable, Unreadable
from engine.routing.router import WINDOW
from engine.store.decision import Decision
from engine.tools.replay.files import FileProblem, expand_paths, load_file


@dataclass(frozen=True, slots=True)
class InputFile:
    """A message file, where its output goes (relative to the output folder), its messages
    and, once processed, what the route did with each."""

    source: Path
    target: Path
    messages: list[Readable]
    processed: list[Processed] = field(default_factory=list)


@dataclass(slots=True)
class Summary:
    """What a run did, without patient data: counts only."""

    files: int
    messages: int
    simulated: bool
    outcomes: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    failed: int = 0  # a step raised: the message was written as read
    left_out: int = 0  # dropped or refused by the route's steps: not written


Targets = tuple[Path, Path]  # an input file, its output path relative to the output folder


def output_targets(paths: Sequence[str], suffix: str | None = None) -> list[Targets]:
    """(input file, output path relative to the output folder) for each file to read: the
    path inside a folder argument, or the bare name of a file argument (its suffix replaced
    by `suffix` when given)."""
    targets: dict[Path, Path] = {}
    for text in paths:
        root = Path(text)
        for source in expand_paths([text]):
            target = source.relative_to(root) if root.is_dir() else Path(source.name)
            target = target if suffix is None else target.with_suffix(suffix)
            if source in targets:
                continue
            if target in targets.values():
                raise CliError(f"two input files would both be written to {target}")
            targets[source] = target
    return list(targets.items())


def check_outputs(targets: Iterable[Targets], out_dir: Path, force: bool) -> None:
    """Fail before any INSi call when an output would replace an input, or, without
    `force`, a file that exists."""
    for source, target in targets:
        path = out_dir / target
        if path.resolve() == source.resolve():
            raise CliError(f"{path} would replace its own input: choose another --out")
        if not force and path.exists():
            raise CliError(f"{path} already exists: choose another --out or add --force")


def read_inputs(
    targets: Iterable[Targets], runner: RouteRunner
) -> tuple[list[InputFile], list[FileProblem]]:
    """Read and decode every file; a file with a problem is reported, not processed."""
    ids = itertools.count(1)
    files: list[InputFile] = []
    problems: list[FileProblem] = []
    for source, target in targets:
        loaded = load_file(source)
        if isinstance(loaded, FileProblem):
            problems.append(loaded)
            continue
        messages: list[Readable] = []
        for message in loaded.messages:
            admission = runner.admit(message.payload)
            if isinstance(admission, Unreadable):  # charset or structure: the engine refuses it
                error = admission.refusal.error.text
                problems.append(FileProblem(str(source), f"message {message.position}: {error}"))
                break
            admission.routed.message_id = next(ids)
            messages.append(admission)
        else:
            files.append(InputFile(source, target, messages))
    return files, problems


async def enrich(files: Sequence[InputFile], runner: RouteRunner, simulated: bool) -> Summary:
    """Run the route over every message, a window at a time across files (a folder of
    one-message files still has WINDOW INSi lookups in flight); each file's results in its
    order."""
    messages = [(file, message) for file in files for message in file.messages]
    summary = Summary(len(files), len(messages), simulated)
    for start in range(0, len(messages), WINDOW):
        window = messages[start : start + WINDOW]
        results = await asyncio.gather(*(runner.route(m) for _, m in window))
        for (file, _), processed in zip(window, results, strict=True):
            file.processed.append(processed)
    for file in files:
        for processed in file.processed:
            record = _identity(processed)
            summary.outcomes[record["outcome"]] += 1
            summary.calls += record.get("calls", 0)
            summary.failed += any(d.outcome == "error" for d in processed.decisions)
            summary.left_out += processed.output is None
    return summary


def _identity(processed: Processed) -> dict[str, Any]:
    """The identity record of a processed message, as the store would keep it: the INS
    guard's when it removed an INS a person must see, else the enrichment's (outcome and
    detail only when the step failed, `not_applicable` when it never ran: refused or
    dropped before it)."""
    guarded = (d for d in reversed(processed.decisions) if d.kind == GUARD_KIND and d.payload)
    enriched = (d for d in processed.decisions if d.kind == KIND)
    decision = next(guarded, None) or next(enriched, None)
    if decision is None:
        return {"outcome": "not_applicable", "detail": "not_enriched"}
    return _record(decision)


def _record(decision: Decision) -> dict[str, Any]:
    payload: dict[str, Any] | None = decision.payload
    return payload or {"outcome": decision.outcome, "detail": decision.detail}


def write_outputs(files: Iterable[InputFile], out_dir: Path, force: bool) -> None:
    """One 0600 file per input file: its messages as the route's steps leave them, in order."""
    for file in files:
        with open_output(out_dir / file.target, force) as output:
            output.write(b"".join(p.output for p in file.processed if p.output is not None))


def open_output(path: Path, force: bool) -> BinaryIO:
    """An output file (0600), its folders made."""
    try:
        make_folders(path.parent)
    except OSError as error:
        raise CliError(f"cannot create {path.parent}: {error.strerror}") from None
    return open_private(path, force)


def identity_records(
    files: Iterable[InputFile], read_at: float, outcomes: frozenset[str] | None
) -> list[IdentityRecord]:
    """The messages' outcomes (only `outcomes` unless None) in the store's shape, for the
    same report as the engine's."""
    return [
        IdentityRecord(
            message.routed.message_id,
            read_at,
            message.routed.route,
            message.routed.header.control_id,
            message.routed.header.type_and_trigger,
            record,
        )
        for file in files
        for message, processed in zip(file.messages, file.processed, strict=True)
        for record in [_identity(processed)]
        if outcomes is None or record["outcome"] in outcomes
    ]
