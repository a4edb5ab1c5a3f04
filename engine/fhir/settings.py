"""The `fhir` table of a destination: the FHIR server, its credentials, the events it is fed."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from engine.config.loader import doc

UPDATE_EVENTS = ["A28", "A31", "A01", "A04", "A05"]
MERGE_EVENTS = ["A40"]
CHANGE_EVENTS = ["A47"]


@dataclass(frozen=True)
class OAuthSettings:
    """OAuth 2 client credentials: the token is cached until shortly before it expires."""

    token_url: str = field(metadata=doc("token endpoint (https://...)"))
    client_id: str = field(metadata=doc("client identifier"))
    client_secret_env: str = field(
        metadata=doc("environment variable holding the client secret (never in the file)")
    )
    scope: str | None = field(default=None, metadata=doc("scope asked for, if the server wants"))

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not _is_http_url(self.token_url):
            found.append(("token_url", "an http:// or https:// URL"))
        if not self.client_id.strip():
            found.append(("client_id", "a client identifier"))
        if not self.client_secret_env.strip():
            found.append(("client_secret_env", "the name of an environment variable"))
        return found


@dataclass(frozen=True)
class FhirSettings:
    base_url: str = field(metadata=doc("the FHIR R4 server's base, e.g. https://fhir.example/R4"))
    local_system: str | None = field(
        default=None,
        metadata=doc(
            "system (urn:oid:...) of the local identifier (PID-3 PI) when its CX-4 gives no OID"
        ),
    )
    update_events: list[str] = field(
        default_factory=lambda: list(UPDATE_EVENTS),
        metadata=doc("events sent as an ITI-104 add/revise (add A08 to treat it as A31)"),
    )
    merge_events: list[str] = field(
        default_factory=lambda: list(MERGE_EVENTS),
        metadata=doc("events sent as a merge: the MRG-1 record made inactive, replaced-by PID"),
    )
    change_events: list[str] = field(
        default_factory=lambda: list(CHANGE_EVENTS),
        metadata=doc("events sent as a change of identifier (MRG-1 the identifier replaced)"),
    )
    remove_events: list[str] = field(
        default_factory=list,
        metadata=doc("events sent as a conditional DELETE of the patient (e.g. A29); none"),
    )
    oauth: OAuthSettings | None = field(
        default=None, metadata=doc("OAuth 2 client credentials; absent: no Authorization header")
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not _is_http_url(self.base_url):
            found.append(("base_url", "an http:// or https:// URL"))
        if self.local_system is not None and not self.local_system.startswith("urn:oid:"):
            found.append(("local_system", "urn:oid: followed by the OID of the local identifier"))
        lists = {
            "update_events": self.update_events,
            "merge_events": self.merge_events,
            "change_events": self.change_events,
            "remove_events": self.remove_events,
        }
        seen: set[str] = set()
        for key, events in lists.items():
            for index, event in enumerate(events):
                if not (len(event) == 3 and event[0] == "A" and event[1:].isdigit()):
                    found.append((f"{key}[{index}]", 'an ADT trigger event such as "A28"'))
                elif event in seen:
                    found.append((f"{key}[{index}]", "an event listed once over the four lists"))
                seen.add(event)
        return found

    def event_lists(self) -> list[list[str]]:
        return [self.update_events, self.merge_events, self.change_events, self.remove_events]

    def action(self, event: str) -> str | None:
        """What the feed does for a trigger event: update, merge, change, remove, or None."""
        for name, events in (
            ("update", self.update_events),
            ("merge", self.merge_events),
            ("change", self.change_events),
            ("remove", self.remove_events),
        ):
            if event in events:
                return name
        return None


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
