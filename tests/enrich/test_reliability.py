"""PID-32 read strictly: only one exact `VALI` opens the INS path; FICT/DOUT close it from
anywhere in the field."""

import pytest

from engine.enrich.reliability import Reliability, read_reliability
from engine.hl7.message import Separators


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("VALI", Reliability("VALI")),
        ("VALI~HOMA", Reliability("VALI")),
        ("HOMA~VALI", Reliability("VALI")),
        ("VALI~", Reliability("VALI")),  # an empty repetition says nothing
        ("PROV", Reliability("PROV")),
        ("", Reliability("")),
        ('""', Reliability("")),
        ("DESA", Reliability("DESA")),
        ("vali", Reliability("", "unknown_status")),  # table 0445 is case-sensitive
        (" VALI", Reliability("", "unknown_status")),
        ("VALI~XYZ", Reliability("", "unknown_status")),
        ("VALI\\T\\", Reliability("", "unknown_status")),
        ("VALI~PROV", Reliability("", "several_statuses")),
        ("VALI~VALI", Reliability("", "several_statuses")),
        ("VALI^X", Reliability("", "malformed_status")),
        ("VALI&X", Reliability("", "malformed_status")),
        ("VALI^FICT", Reliability("", "fictive_or_doubtful")),  # in a component
        ("VALI~FICT", Reliability("", "fictive_or_doubtful")),
        ("VALI~dout", Reliability("", "fictive_or_doubtful")),  # closing is case-blind
        ("VALI&X&DOUT", Reliability("", "fictive_or_doubtful")),
    ],
)
def test_read_reliability(field: str, expected: Reliability) -> None:
    assert read_reliability(field, Separators()) == expected
