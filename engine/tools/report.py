"""The identity-vigilance report: the outcomes that need a person, as CSV or JSON rows.

This report is the one place where patient identity leaves the store: a row names the local
identifier and the traits sent to INSi, and for a récupérée identity the INS that INSi
returned, which the team may attach only after checking an identity document. An INS the
engine removed is shown by its kind and last four characters, enough to find it again in the
source system. Rows go to
a 0600 file (`engine.base.private_files`); nothing here logs or prints them, callers print only
the counts per outcome.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from engine.base.private_files import open_private
from engine.enrich.outcome import Outcome
from engine.enrich.store import IdentityRecord, identity_records
from engine.ins.oids import parse_oid
from engine.store.roles import ExtensionTables
from engine.tools.spreadsheet import DELIMITERS, Row, safe_cell

FORMATS = ("csv", "json")
COLUMNS = (
    "received_at",
    "route",
    "control_id",
    "event",
    "local_id",
    "status",
    "outcome",
    "detail",
    "traits_differing",
    "removed_ins",
    "insi_calls",
    "simulated",
    "birth_name",
    "first_names",
    "sex",
    "birth_date",
    "birth_place",
    "ins_matricule",
    "ins_oid",
)
PAGE = 500


def report_row(stored: IdentityRecord) -> Row:
    """One row: the message, the outcome, the traits used, the INS only when récupérée."""
    record = stored.record
    traits = record.get("traits_used") or {}
    returned = record.get("ins") if record.get("outcome") == Outcome.RECUPEREE else None
    ins = returned or {}
    received = dt.datetime.fromtimestamp(stored.received_at, dt.UTC).astimezone()
    return {
        "received_at": received.isoformat(timespec="seconds"),
        "route": stored.route,
        "control_id": stored.control_id,
        "event": stored.message_type,
        "local_id": record.get("local_id") or "",
        "status": record.get("status", ""),
        "outcome": record.get("outcome", ""),
        "detail": record.get("detail", ""),
        "traits_differing": " ".join(record.get("traits_differing", ())),
        "removed_ins": "; ".join(_ins_hint(ins) for ins in record.get("removed_ins", ())),
        "insi_calls": record.get("calls", 0),
        "simulated": bool(record.get("simulated", False)),
        "birth_name": traits.get("birth_name", ""),
        "first_names": " ".join(traits.get("first_names", ())),
        "sex": traits.get("sex", ""),
        "birth_date": traits.get("birth_date", ""),
        "birth_place": traits.get("birth_place") or "",
        "ins_matricule": ins.get("matricule", ""),
        "ins_oid": ins.get("oid", ""),
    }


def _ins_hint(ins: dict[str, str]) -> str:
    """An INS the engine removed, as a person can look it up: its kind and last four
    characters, never the whole matricule."""
    oid = parse_oid(ins.get("oid", ""))
    return f"{oid.kind if oid else 'INS'} …{ins.get('matricule', '')[-4:]}"


class ReportFile:
    """Rows written one page at a time to a new 0600 file; use as a context manager.

    A report that fails half-way is removed rather than left looking complete.
    """

    def __init__(self, path: Path, fmt: str, force: bool = False, delimiter: str = ",") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"report format {fmt!r}")
        if delimiter not in DELIMITERS:
            raise ValueError(f"report delimiter {delimiter!r}")
        self.path = path
        self.counts: Counter[str] = Counter()
        self.simulated = 0
        self._json = fmt == "json"
        # UTF-8 with a BOM for CSV: spreadsheets otherwise read accents as windows-1252.
        self._text = io.TextIOWrapper(
            open_private(path, force), encoding="utf-8" if self._json else "utf-8-sig", newline=""
        )
        if self._json:
            self._text.write("[")
        else:
            self._csv = csv.writer(self._text, delimiter=delimiter)
            self._csv.writerow(COLUMNS)

    def write(self, rows: Iterable[Row]) -> None:
        for row in rows:
            if self._json:
                self._text.write(",\n" if self.counts.total() else "\n")
                self._text.write(json.dumps(row, ensure_ascii=False))
            else:
                self._csv.writerow(safe_cell(row[column]) for column in COLUMNS)
            self.counts[row["outcome"]] += 1
            self.simulated += row["simulated"]

    def __enter__(self) -> ReportFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._json and error is None:
            self._text.write("\n]\n")
        self._text.close()
        if error is not None:
            self.path.unlink(missing_ok=True)


async def write_store_report(
    store: ExtensionTables, report: ReportFile, since: float, outcomes: frozenset[str] | None
) -> None:
    """Page through the store's outcomes into `report`, never holding them all at once."""
    after = 0
    while page := await identity_records(store, since, outcomes, after, PAGE):
        report.write(report_row(stored) for stored in page)
        after = page[-1].message_id
