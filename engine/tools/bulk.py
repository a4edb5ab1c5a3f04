"""What `ins-engine enrich --to-fhir` writes: each input file as an NDJSON file (FHIR bulk
data format) of the resources a destination would write for its messages.

After the route ran (`engine.tools.offline.enrich`), each message the destination receives
(`Processed.destinations`: after its own steps and the outbound INS guard) goes, in file
and message order, through one dry run of the destination (`DestinationKind.preview`): a
server that held nothing at the start of the run, so that the ids it gives are those of
this run and a merged record's `replaced-by` link names a resource of these files. Every
resource written is one line; a write without a resource (a removal) has none. A message
the destination would park is counted and named by file and position, with the sender's
reason (no patient data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.delivery.kind import DryRun, NotWritten
from engine.tools.offline import InputFile, open_output


@dataclass(slots=True)
class Written:
    """What the NDJSON files hold, in counts, and the messages left out (why, no data)."""

    taken: int = 0  # messages the destination receives
    resources: int = 0
    removals: int = 0  # writes without a resource, not in the files
    not_written: list[str] = field(default_factory=list)


async def write_resources(
    files: Iterable[InputFile], destination: str, dry_run: DryRun, out_dir: Path, force: bool
) -> Written:
    """One 0600 NDJSON file per input file, at its output path."""
    written = Written()
    for file in files:
        lines = []
        for position, processed in enumerate(file.processed, start=1):
            payload = processed.destinations.get(destination)
            if payload is None:
                continue
            written.taken += 1
            try:
                writes = await dry_run.writes(payload)
            except NotWritten as error:
                written.not_written.append(f"{file.source}: message {position}: {error}")
                continue
            resources = [write["resource"] for write in writes if "resource" in write]
            written.removals += len(writes) - len(resources)
            lines += [json.dumps(resource, ensure_ascii=False) + "\n" for resource in resources]
        written.resources += len(lines)
        with open_output(out_dir / file.target, force) as output:
            output.write("".join(lines).encode("utf-8"))
    return written
