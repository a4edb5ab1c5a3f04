"""HL7 v2 DTM values as FHIR `date` and `dateTime`: only what the text says, never invented.

A DTM (`YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`) keeps its precision in FHIR. FHIR wants a
time zone with any time of day; HL7 often sends none, so a time without one is dropped and
the date kept, rather than a zone guessed. Anything that is no real date reads as None.
"""

from __future__ import annotations

import datetime as dt
import re

_DTM = re.compile(
    r"(?P<y>\d{4})(?:(?P<m>\d{2})(?:(?P<d>\d{2})"
    r"(?:(?P<H>\d{2})(?P<M>\d{2})?(?P<S>\d{2})?(?:\.\d{1,4})?)?)?)?"
    r"(?P<tz>[+-]\d{4})?"
)


def fhir_date(text: str) -> str | None:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` from the DTM's date part, or None."""
    found = _DTM.fullmatch(text.strip())
    if found is None:
        return None
    return _date_part(found)


def fhir_datetime(text: str) -> str | None:
    """A FHIR dateTime: the date part, and the time when the DTM gives its zone."""
    found = _DTM.fullmatch(text.strip())
    if found is None:
        return None
    date = _date_part(found)
    if date is None or found["H"] is None or found["tz"] is None or found["d"] is None:
        return date
    hour, minute, second = int(found["H"]), int(found["M"] or 0), int(found["S"] or 0)
    zone = found["tz"]
    if hour > 23 or minute > 59 or second > 59 or int(zone[1:3]) > 14 or int(zone[3:]) > 59:
        return date
    return f"{date}T{hour:02d}:{minute:02d}:{second:02d}{zone[:3]}:{zone[3:]}"


def _date_part(found: re.Match[str]) -> str | None:
    year, month, day = found["y"], found["m"], found["d"]
    if int(year) < 1:
        return None
    if month is None:
        return year
    if not 1 <= int(month) <= 12:
        return None
    if day is None:
        return f"{year}-{month}"
    try:
        dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return f"{year}-{month}-{day}"
