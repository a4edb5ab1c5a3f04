"""Building ADT messages for tests (PAM FR 2.11 style)."""

from __future__ import annotations


def adt(
    control_id: str = "MSG0001",
    event: str = "A28",
    *,
    charset: str = "8859/1",
    encoding: str = "latin-1",
    sender: str = "PAS",
    msh15: str = "",
    msh16: str = "",
    patient_id: str = "12345",
    name: str = "DARK^JEANNE^JEANNE MARIE CECILE^^Mme^^L",
    birth_date: str = "19700101",
    sex: str = "F",
    version: str = "2.5^FRA^2.11",
    message_type: str = "ADT",
) -> bytes:
    """One ADT message as bytes, CR-separated."""
    segments = [
        f"MSH|^~\\&|{sender}|HOSP|INS-ENGINE|HOSP|20240101120000||{message_type}^{event}^ADT_A05|"
        f"{control_id}|P|{version}|||{msh15}|{msh16}||{charset}",
        "EVN||20240101120000",
        f"PID|1||{patient_id}^^^HOSP^PI||{name}||{birth_date}|{sex}|||^^^^^FRA^BDL^^63220"
        "|||||||||||||||||||||VALI",
    ]
    return ("\r".join(segments) + "\r").encode(encoding)
