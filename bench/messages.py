"""Realistic PAM FR 2.11 ADT messages for the benchmarks (about 700 bytes each)."""

from __future__ import annotations

TEMPLATE = (
    "MSH|^~\\&|PAS|CHU-EXEMPLE|INS-ENGINE|CHU-EXEMPLE|20260101120000||ADT^A28^ADT_A05|{id}|P|"
    "2.5^FRA^2.11|||||FRA|8859/1|||2.11^IHE_FRANCE-2.11-PAM\r"
    "EVN||20260101120000|||JDUPONT^DUPONT^JEAN\r"
    "PID|1||{pid}^^^CHU-EXEMPLE&1.2.250.1.999.1.1&ISO^PI||^{first}^^^^^D~{last}^{first}^"
    "{first}^^M.^^L||{birth}|{sex}|||12 RUE DES LILAS^^CLERMONT-FERRAND^^63000^FRA^H~"
    "^^^^^FRA^BDL^^{place}||0473000000^PRN^PH|||||||||||||||||||||VALI\r"
    "PV1|1|N\r"
    "ZFD|||||SM||CN|20300101\r"
)


def adt_message(number: int, persons: list[tuple[str, str, str, str, str]] | None = None) -> bytes:
    """Message `number`: its own control id and patient; traits from `persons` if given."""
    if persons:
        last, first, birth, sex, place = persons[number % len(persons)]
    else:
        last, first, birth, sex, place = "MARTIN", "PAUL", "19800101", "M", "63113"
    return TEMPLATE.format(
        id=f"B{number:09d}",
        pid=f"{number % 50000:08d}",
        last=last,
        first=first,
        birth=birth,
        sex=sex,
        place=place,
    ).encode("latin-1")
