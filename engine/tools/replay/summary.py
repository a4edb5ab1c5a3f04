"""What a replay did, counted as results arrive, rendered as JSON or as rich tables.

Only what identifies a message without its content is kept: file, position, MSH-10, message
type, ACK code and text. Latency percentiles cover the messages that got a correlated ACK.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.hl7.ack import AckCode
from engine.tools.replay.acks import ACCEPTED
from engine.tools.replay.files import FileProblem, ReplayFile
from engine.tools.replay.sender import Failure, Result

SHOWN_ROWS = 50


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Summary:
    """Accumulates results; `record` is the sender's `on_result` callback."""

    files: list[ReplayFile]
    problems: list[FileProblem]
    dry_run: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    not_accepted: list[Result] = field(default_factory=list)
    not_sent: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def message_count(self) -> int:
        return sum(len(file.messages) for file in self.files)

    @property
    def sent(self) -> int:
        return sum(self.outcomes.values()) - self.outcomes[Failure.NOT_SENT]

    @property
    def accepted(self) -> int:
        return sum(self.outcomes[code] for code in ACCEPTED)

    @property
    def succeeded(self) -> bool:
        """Exit status 0: every file read, and (unless dry) every message accepted."""
        if self.problems:
            return False
        return self.dry_run or self.accepted == self.message_count

    def record(self, result: Result) -> None:
        self.outcomes[result.outcome] += 1
        if result.latency_s is not None:
            self.latencies_s.append(result.latency_s)
        if result.outcome is Failure.NOT_SENT:
            # Skipped messages come by runs of one file: one row per file and reason.
            key = (result.message.file, result.text)
            self.not_sent.setdefault(key, []).append(result.message.position)
        elif result.outcome not in ACCEPTED:
            self.not_accepted.append(result)

    def finish(self) -> None:
        self.finished = time.perf_counter()

    def to_json(self) -> dict[str, Any]:
        duration_s = (self.finished or time.perf_counter()) - self.started
        latencies = sorted(self.latencies_s)
        return {
            "dry_run": self.dry_run,
            "files": len(self.files),
            "messages": self.message_count,
            "sent": self.sent,
            "acks": {code.value: self.outcomes[code] for code in AckCode},
            "failures": {
                failure.value: self.outcomes[failure]
                for failure in Failure
                if failure is not Failure.NOT_SENT
            },
            "not_sent": self.outcomes[Failure.NOT_SENT],
            "duration_s": round(duration_s, 3),
            "messages_per_s": round(self.sent / duration_s, 1) if duration_s > 0 else None,
            "latency_ms": {
                name: None if value is None else round(value * 1000, 3)
                for name, value in (
                    ("p50", percentile(latencies, 0.50)),
                    ("p99", percentile(latencies, 0.99)),
                )
            },
            "not_accepted": [
                {
                    "file": result.message.file,
                    "position": result.message.position,
                    "control_id": result.message.control_id,
                    "outcome": result.outcome.value,
                    "text": result.text,
                }
                for result in self.not_accepted
            ],
            "not_sent_files": [
                {
                    "file": file,
                    "from_position": min(positions),
                    "count": len(positions),
                    "reason": reason,
                }
                for (file, reason), positions in self.not_sent.items()
            ],
            "files_refused": len(self.problems),
            "unreadable_files": [
                {"file": problem.path, "reason": problem.reason} for problem in self.problems
            ],
        }

    def render(self, console: Console) -> None:
        data = self.to_json()
        if self.problems:
            console.print(_table("Files not sent", ("file", "reason"), data["unreadable_files"]))
        if self.dry_run:
            console.print(_dry_run_table(self.files))
        else:
            console.print(_totals_table(data))
            if data["not_accepted"]:
                console.print(
                    _table(
                        "Messages not accepted",
                        ("file", "position", "control_id", "outcome", "text"),
                        data["not_accepted"],
                    )
                )
            if data["not_sent_files"]:
                console.print(
                    _table(
                        "Messages not sent",
                        ("file", "from_position", "count", "reason"),
                        data["not_sent_files"],
                    )
                )
        verdict = "[green]OK[/]" if self.succeeded else "[red]FAILED[/]"
        console.print(f"{verdict}: {self.verdict_text(data)}")

    def verdict_text(self, data: dict[str, Any]) -> str:
        """What the run did with messages, and, apart, the files it refused to send."""
        read = f"{data['files']} file(s) read"
        if self.dry_run:
            text = f"{data['messages']} message(s) in {read}, nothing sent"
        else:
            text = f"{self.accepted} of {data['messages']} message(s) accepted, from {read}"
        if self.problems:
            text += (
                f"; {len(self.problems)} file(s) refused, nothing of them sent (see Files not sent)"
            )
        return text


def _totals_table(data: dict[str, Any]) -> Table:
    table = Table(title="Replay", show_header=False)
    table.add_row("messages sent", f"{data['sent']} of {data['messages']}")
    if data["files_refused"]:
        table.add_row("files refused", str(data["files_refused"]))
    for code, count in data["acks"].items():
        if count:
            table.add_row(code, str(count))
    for name, count in (*data["failures"].items(), ("not_sent", data["not_sent"])):
        if count:
            table.add_row(name.replace("_", " "), str(count))
    table.add_row("throughput", f"{data['messages_per_s']} messages/s")
    for name, value in data["latency_ms"].items():
        table.add_row(f"ACK latency {name}", "-" if value is None else f"{value} ms")
    return table


def _dry_run_table(files: list[ReplayFile]) -> Table:
    table = Table(title="Dry run: nothing sent")
    for column in ("file", "layout", "messages"):
        table.add_column(column)
    for file in files:
        table.add_row(Text(file.path), file.layout.value, str(len(file.messages)))
    return table


def _table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:SHOWN_ROWS]:
        # Text, not markup: file names and ACK texts come from outside.
        table.add_row(*(Text(str(row[column])) for column in columns))
    if len(rows) > SHOWN_ROWS:
        table.caption = f"… and {len(rows) - SHOWN_ROWS} more (see --json)"
    return table
