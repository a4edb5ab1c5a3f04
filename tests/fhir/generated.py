"""Generated PAM FR messages for the FHIR properties: PIDs mixing statuses and attributes,
INS repetitions under every OID (the billing NIR `NH` under the INS-NIR's too), bad keys,
several INS, test OIDs with and without the route's `allow_test_oids`, missing traits."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.fhir import profiles
from engine.fhir.patient import PatientOptions
from engine.hl7.message import Message

OID = "1.2.250.1.213.1.4."
PERSONS = [  # (PID-5, PID-7, PID-8, COG, matricule, OID ending)
    ("ADRUN^ZOE^ZOE^^^^L", "19751231", "F", "63220", "275126322074974", "8"),
    ("CORSE^ANTHONY^ANTHONY^^^^L", "19800302", "M", "2B020", "180032B02040123", "8"),
    ("PROVISOIRE^MATRICULE^MATRICULE^^^^L", "20090701", "M", "63220", "109076322088835", "9"),
    (
        "NESSI^MICHELANGELO^MICHELANGELO ANTHONY^^^^L",
        "20100807",
        "M",
        "63220",
        "110086322083060",
        "8",
    ),
]
INS_SYSTEMS = set(profiles.INS_SYSTEMS)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def ins_repetitions(draw: st.DrawFn, person: tuple[str, ...]) -> str:
    matricule = draw(
        st.sampled_from(
            [person[4], person[4], PERSONS[0][4], "275126322074975", "2751263220749", '""']
        )
    )
    ending = draw(st.sampled_from([person[5], person[5], "8", "9", "10", "11", "2", "99"]))
    namespace = "ASIP-SANTE-INS-NIA" if ending == "9" else "ASIP-SANTE-INS-NIR"
    if draw(st.booleans()):
        return f"{matricule}^^^{namespace}&{OID}{ending}&ISO^INS"
    kind = draw(st.sampled_from(["INS", "NH", "INS-NIR", "INS-C", "PI", ""]))
    authority = draw(
        st.sampled_from(
            [f"{namespace}&{OID}{ending}&ISO", f"ASIP-SANTE-NIR&{OID}8&ISO", f"{OID}{ending}"]
        )
    )
    return f"{matricule}^^^{authority}^{kind}"


statuses = st.lists(
    st.sampled_from(["VALI", "VALI", "VALI", "PROV", "vali", "FICT", "DOUT", "HOMA", "VIDE"]),
    max_size=3,
).map("~".join)


@st.composite
def messages(draw: st.DrawFn) -> tuple[Message, PatientOptions]:
    person = draw(st.sampled_from(PERSONS))
    ids = [draw(ins_repetitions(person)) for _ in range(draw(st.integers(0, 3)))]
    local = draw(st.sampled_from(["800001^^^CHU&1.2.250.1.999.1.1&ISO^PI", "800001^^^CHU^PI"]))
    pid3 = draw(st.permutations([local, *ids]))
    name = draw(st.sampled_from([person[0], person[0], "^^^^^^L", "DUPONT^^^^^^D"]))
    birth = draw(st.sampled_from([person[1], person[1], person[1][:6]]))
    sex = draw(st.sampled_from([person[2], person[2], "U", "X", ""]))
    place = draw(st.sampled_from([f"^^^^^FRA^BDL^^{person[3]}", "", "^^^^^FRA^BDL"]))
    fields = ["PID", "1", "", "~".join(pid3), "", name, "", birth, sex, "", "", place]
    fields += [""] * (31 - len(fields))
    fields += [draw(st.sampled_from(["", "", "Y"])), draw(statuses)]
    zfd = draw(st.sampled_from(["", "ZFD||||N|INSI|20240302101000|CN", "ZFD|^^1975|||Y|SM"]))
    mrg = draw(st.sampled_from(["", f"MRG|{draw(ins_repetitions(person))}"]))
    processing = draw(st.sampled_from(["P", "T", ""]))
    event = draw(st.sampled_from(["A47", "A47", "A28", "A31", "A40"]))
    msh = f"MSH|^~\\&|A|B|C|D|20240101||ADT^{event}|1|{processing}|2.5"
    text = "\r".join(s for s in (msh, "|".join(fields), zfd, mrg) if s)
    return Message.parse(text), PatientOptions(allow_test_oids=draw(st.booleans()))
