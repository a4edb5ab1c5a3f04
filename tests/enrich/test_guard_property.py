"""The INS invariant, shown over generated feeds through the engine's own path.

Feeds of generated messages (ADT of any event, ORU, ORM, SIU, MDM; one to three PID, MRG,
identifiers in PID-2/3/4 in every spelling of an INS, PID-32 statuses and attributes in
any case, component or spacing, ZFD segments, birth dates of every precision) are stored in
a real SQLite store and routed by the engine's router through a route that enriches (the
in-process INSi simulator and its public test persons) and delivers to two destinations,
one of whose own steps writes an INS where none may be. Then:

- no PID of anything delivered carries an INS that breaks rules 1-5, checked by an oracle
  written here independently of the engine's rules;
- each delivered message fed back in comes out byte-identical, ZFD-6 (the INSi call time)
  aside: decisions survive a second pass.

`pytest --slow` runs ten times as many feeds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.enrich.engine_path import FEED, EnginePath

pytestmark = pytest.mark.system

ROUTE = (
    FEED
    + """
accept = ["*"]
[[routes.steps]]
kind = "ins_enrich"
events = ["A01", "A04", "A05", "A08", "A28", "A31"]
[[routes.destinations]]
name = "all"
file = "out/all"
[[routes.destinations]]
name = "careless"
file = "out/careless"
accept = ["ADT^*", "ORU^*"]
[[routes.destinations.steps]]
kind = "set"
field = "PID-4"
value = "275126322074974^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
"""
)

# Public test persons of the simulator: (PID-5 L, PID-7, PID-8, COG, matricule, OID).
PERSONS = [
    ("ADRUN^ZOE^ZOE^^^^L", "19751231", "F", "63220", "275126322074974", "8"),
    ("CORSE^ANTHONY^ANTHONY^^^^L", "19800302", "M", "2B020", "180032B02040123", "8"),
    ("PROVISOIRE^MATRICULE^MATRICULE^^^^L", "20090701", "M", "63220", "109076322088835", "9"),
    ("ADRTROIS^DOMINIQUE^DOMINIQUE^^^^L", "19970226", "F", "2A020", "297022A02077878", "8"),
]
OID = "1.2.250.1.213.1.4."
NAMESPACES = ["ASIP-SANTE-INS-NIR", "ASIP-SANTE-INS-NIA", "ASIP-SANTE-INS-C", "asip-sante-ins-nir"]
TYPES = ["INS", "INS-NIR", "INS-NIA", "INS-NIR-TEST", "INS-NIR-DEMO", "INS-C", "NH", "ins", ""]
EVENTS = ["A01", "A03", "A04", "A05", "A08", "A17", "A24", "A28", "A31", "A37", "A40", "A47"]
OTHER_TYPES = ["ORU^R01^ORU_R01", "ORM^O01^ORM_O01", "SIU^S12^SIU_S12", "MDM^T02^MDM_T02"]

matricules = st.one_of(
    st.sampled_from([person[4] for person in PERSONS]),
    st.sampled_from(["275126322074975", "2751263220749", "2 75 12 63 220 749 74", '""', ""]),
    st.sampled_from(["297022a02077878", "1234567890123456789012"]),
)
oids = st.sampled_from([f"{OID}8", f"{OID}9", f"{OID}10", f"{OID}11", f"{OID}2", "1.2.3", ""])


@st.composite
def ins_repetitions(draw: st.DrawFn) -> str:
    """An identifier that is, or looks like, or is near an INS, in any spelling."""
    if draw(st.booleans()):  # canonical, so that some INS may rightly leave
        person = draw(st.sampled_from(PERSONS))
        oid = f"{OID}{draw(st.sampled_from([person[5], person[5], '10', '11']))}"
        namespace = "ASIP-SANTE-INS-NIA" if oid.endswith(".9") else "ASIP-SANTE-INS-NIR"
        return f"{person[4]}^^^{namespace}&{oid}&ISO^INS"
    matricule, oid = draw(matricules), draw(oids)
    namespace = draw(st.sampled_from(["", *NAMESPACES]))
    authority = draw(
        st.sampled_from([f"{namespace}&{oid}&ISO", f"{oid}", f"{namespace}", f"&{oid}"])
    )
    type_ = draw(st.sampled_from(TYPES))
    spaced = draw(st.sampled_from(["", " "]))
    return f"{matricule}^^^{authority}^{spaced}{type_}"


statuses = st.lists(
    st.sampled_from(
        [
            *("VALI", "VALI", "VALI  ", "PROV", "vali", "FICT", "DOUT", "fict", "HOMA"),
            *("VALI^FICT", "VIDE", "DOUB", " VALI", '""'),
        ]
    ),
    max_size=3,
).map("~".join)


@st.composite
def pids(draw: st.DrawFn, number: int) -> str:
    person = draw(st.sampled_from(PERSONS))
    local = f"IPP{number}^^^HOSP&1.2.250.1.999.1.1&ISO^PI"
    ids = [draw(ins_repetitions()) for _ in range(draw(st.integers(0, 3)))]
    pid3 = draw(st.permutations([local, *ids]))
    pid2 = draw(st.sampled_from(["", draw(ins_repetitions())]))
    pid4 = draw(st.sampled_from(["", "", draw(ins_repetitions())]))
    birth = draw(st.sampled_from([person[1], person[1], person[1][:4], person[1][:6] + "00"]))
    places = draw(
        st.sampled_from(
            [f"^^^^^FRA^BDL^^{person[3]}", "", f"^^^^^FRA^BDL^^{person[3]}~^^^^^FRA^BDL^^75056"]
        )
    )
    fields = ["PID", str(number), pid2, "~".join(pid3), pid4, person[0], "", birth, person[2]]
    fields += ["", "", places]
    fields += [""] * (31 - len(fields))
    fields += [draw(st.sampled_from(["", "", "N", "Y"])), draw(statuses)]
    return "|".join(fields)


zfds = st.lists(
    st.builds(
        lambda lunar, corrected, mode, document: f"ZFD|{lunar}|||{corrected}|{mode}||{document}",
        st.sampled_from(["", "", "00^00^1975"]),
        st.sampled_from(["", "N", "Y"]),
        st.sampled_from(["", "SM", "INSI"]),
        st.sampled_from(["", "CN", "PA"]),
    ),
    max_size=2,
)


@st.composite
def plausible(draw: st.DrawFn) -> list[str]:
    """A clean VALI identity on an enriched event, carrying its own INS, another person's,
    or none: what a real feed mostly sends, and where a second pass could undo a decision."""
    person, other = draw(st.permutations(PERSONS))[:2]
    event = draw(st.sampled_from(["A28", "A31", "A01"]))
    carried = draw(st.sampled_from(["", person[4], other[4]]))
    oid = f"{OID}9" if carried.startswith("1090763") else f"{OID}8"
    namespace = "ASIP-SANTE-INS-NIA" if oid.endswith(".9") else "ASIP-SANTE-INS-NIR"
    ins = f"~{carried}^^^{namespace}&{oid}&ISO^INS" if carried else ""
    pid = [
        "PID",
        "1",
        "",
        f"IPP1^^^HOSP&1.2.250.1.999.1.1&ISO^PI{ins}",
        "",
        person[0],
        "",
        person[1],
        person[2],
        "",
        "",
        f"^^^^^FRA^BDL^^{person[3]}",
    ]
    pid += [""] * (32 - len(pid)) + ["VALI"]
    msh = f"MSH|^~\\&|PAS|HOSP|DST|HOSP|20240101120000||ADT^{event}|{{id}}|P|2.5^FRA^2.11"
    return [msh, "EVN||20240101120000", "|".join(pid), "PV1|1|N"]


@st.composite
def messages(draw: st.DrawFn) -> list[str]:
    """One message as its segments (MSH-10 and the PI made unique by the harness)."""
    type_ = draw(
        st.one_of(st.sampled_from(EVENTS).map(lambda e: f"ADT^{e}"), st.sampled_from(OTHER_TYPES))
    )
    mode = draw(st.sampled_from(["P", "P", "T", ""]))
    msh = f"MSH|^~\\&|PAS|HOSP|DST|HOSP|20240101120000||{type_}|{{id}}|{mode}|2.5^FRA^2.11"
    segments = [msh, "EVN||20240101120000"]
    for number in range(1, draw(st.integers(1, 3)) + 1):
        segments.append(draw(pids(number)))
        segments.extend(draw(zfds))
        if draw(st.booleans()):
            segments.append("PV1|1|N")
    if draw(st.booleans()):
        segments.append(f"MRG|{draw(st.sampled_from(['IPP9^^^HOSP^PI', draw(ins_repetitions())]))}")
    return segments


# -- the oracle: rules 1-5 written again, on purpose without the engine's code --------------

MARKS = {"INS", "INS-NIR", "INS-NIA", "INS-NIR-TEST", "INS-NIR-DEMO", "INS-C"} | {
    "ASIP-SANTE-INS-NIR",
    "ASIP-SANTE-INS-NIA",
    "ASIP-SANTE-INS-C",
    *(f"{OID}{n}" for n in (2, 8, 9, 10, 11)),
}
STATUSES = set("VIDE PROV VALI DOUB DESA DPOT DOUA COLP COLV FILI CACH ANOM IDVER RECD".split())
STATUSES |= {"IDRA", "USUR", "HOMD", "INVA"}


def is_ins(cx: str, component: str = "^", subcomponent: str = "&") -> bool:
    parts = cx.split(component)
    authority = (parts[3] if len(parts) > 3 else "").split(subcomponent)
    billing = (
        len(parts) > 4
        and parts[4].strip().upper() == "NH"
        and authority[0].strip().upper() in ("", "ASIP-SANTE-NIR")
        and (authority[1].strip() if len(authority) > 1 else "") in ("", f"{OID}8")
    )
    marked = any(s.strip().upper() in MARKS for p in parts[1:] for s in p.split(subcomponent))
    return marked and not billing and parts[0].strip() not in ("", '""')


def key_ok(matricule: str) -> bool:
    if len(matricule) != 15 or not matricule[13:].isdigit():
        return False
    body = matricule[:13].replace("2A", "19").replace("2B", "18")
    return body.isdigit() and 97 - int(body) % 97 == int(matricule[13:])


def full_date(text: str) -> bool:
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return len(text) >= 8 and text[:8].isdigit()


def broken_rules(message: str) -> Iterator[str]:
    """Every rule an INS of this message breaks (nothing for a message that keeps them),
    read with the delimiters its MSH-1 and MSH-2 declare (all four of them)."""
    f, c, r, _, s = message[3:8]
    segments = message.split("\r")
    msh11 = (segments[0].split(f) + [""] * 11)[10].split(c)[0]
    production = msh11 in ("P", "")
    zfds = [z.split(f) + [""] * 8 for z in segments if z.startswith(f"ZFD{f}")]
    for pid in (p.split(f) + [""] * 33 for p in segments if p.startswith(f"PID{f}")):
        found = [(n, cx) for n in (2, 3, 4) for cx in pid[n].split(r) if is_ins(cx, c, s)]
        if not found:
            continue
        if len(found) > 1:
            yield "5: more than one INS in a PID"
        field, cx = found[0]
        parts = cx.split(c)
        oid = cx.split(s)[1] if s in cx else ""
        namespace = "ASIP-SANTE-INS-NIA" if oid == f"{OID}9" else "ASIP-SANTE-INS-NIR"
        if field != 3 or cx != f"{parts[0]}{c * 3}{namespace}{s}{oid}{s}ISO{c}INS":
            yield "4: not canonical"
        if not key_ok(parts[0]):
            yield "4: key"
        if oid not in {f"{OID}{n}" for n in (8, 9, 10, 11)}:
            yield "4: OID"
        if production and oid in (f"{OID}10", f"{OID}11"):
            yield "4: test OID in production"
        tokens = [
            t.strip().upper()
            for repetition in pid[32].split(r)
            for part in repetition.split(c)
            for t in part.split(s)
        ]
        repetitions = [x.rstrip(" ") for x in pid[32].split(r) if x.rstrip(" ") not in ("", '""')]
        if {"FICT", "DOUT"} & set(tokens) or [x for x in repetitions if x in STATUSES] != ["VALI"]:
            yield "2: status"
        if any(x not in STATUSES | {"HOMA"} for x in repetitions):
            yield "2: unknown status"
        if pid[31].strip().upper() == "Y" or not full_date(pid[7]):
            yield "3: PID-31 or PID-7"
        lunar = [x.strip() for z in zfds for part in z[1].split(c) for x in part.split(s)]
        if any(x not in ("", '""') for x in lunar) or any(z[4].strip() == "Y" for z in zfds):
            yield "3: ZFD"


def without_zfd6(message: bytes) -> bytes:
    segments = message.split(b"\r")
    for index, segment in enumerate(segments):
        if segment.startswith(b"ZFD|"):
            fields = segment.split(b"|") + [b""] * 7
            fields[6] = b"<ZFD-6>"
            segments[index] = b"|".join(fields).rstrip(b"|")
    return b"\r".join(segments)


class SyncEnginePath:
    """`EnginePath` on a SQLite file, for hypothesis's synchronous examples."""

    def __init__(self, tmp: Path) -> None:
        self._loop = asyncio.Runner()
        self._path = self._loop.run(EnginePath.open(tmp, f"sqlite:///{tmp}/engine.db", ROUTE))

    def run(self, raw: bytes) -> dict[str, bytes]:
        return self._loop.run(self._path.run(raw))[1]

    def close(self) -> None:
        self._loop.run(self._path.aclose())
        self._loop.close()


@pytest.fixture(scope="module")
def engine_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnginePath]:
    path = SyncEnginePath(tmp_path_factory.mktemp("guard-property"))
    yield path
    path.close()


FEED = itertools.count()


@pytest.mark.timeout(600)  # a few hundred feeds through a real store on a loaded machine
@settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.lists(st.one_of(plausible(), messages()), min_size=1, max_size=6))
def test_no_ins_breaking_the_invariant_leaves_and_a_second_pass_changes_nothing(
    engine_path: SyncEnginePath, feed: list[list[str]]
) -> None:
    feed_number = next(FEED)  # unique control ids and patients: each feed stands alone
    raws = [
        "\r".join(segments)
        .format(id=f"F{feed_number}M{n}")
        .replace("IPP", f"F{feed_number}P")
        .encode("latin-1")
        + b"\r"
        for n, segments in enumerate(feed)
    ]
    for raw in raws:  # each message, then its output fed back, before the next one
        first = engine_path.run(raw)
        for destination, output in first.items():
            broken = list(broken_rules(output.decode("latin-1")))
            assert not broken, (destination, broken, output)
        if "all" in first:
            second = engine_path.run(first["all"])
            assert without_zfd6(second["all"]) == without_zfd6(first["all"])
