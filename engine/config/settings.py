"""The engine's configuration: its own sections, and loading a file with its route files.

Each section is a dataclass read by the generic loader (`engine.config.loader`): field names
are the TOML keys, field metadata `doc` is the key's line in `check --keys`. The sections of
a plug-in are not here: an installed step kind declares them (`engine.config.kinds`), the
engine-wide ones (`[insi]`) into `Config.sections`, the keys it adds to a route into
`RouteSettings.kind_keys`, and a guard's route table into `RouteSettings.guards`; they read
as attributes (`config.insi`, `route.ins_guard`). A step's table is read with the settings
dataclass its `kind` declares.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from engine.config.kinds import DESTINATION_KINDS, GUARD_KINDS, STEP_KINDS, installed
from engine.config.loader import INVALID, Builder, Invalid, Key, doc, join, read_toml
from engine.config.loader import documented_keys as _documented_keys
from engine.errors import ConfigError, ConfigErrors
from engine.hl7.charset import is_known
from engine.store.base import STORE_TIMEOUT_S
from engine.store.sqlite_wal import LIMIT_MB
from engine.store.url import SQLITE_PREFIX, sqlite_path, url_problem

T = TypeVar("T")
DEFAULT_CONFIG = "routes/default.toml"
_NAME = re.compile(r"[A-Za-z0-9_-]+")
# The slots the installed kinds fill: engine-wide sections, a route's keys, its guards' tables.
SECTIONS = "sections"
ROUTE_KEYS = "route keys"
ROUTE_GUARDS = "route guards"
DESTINATION_TABLES = "destination tables"


def parse_address(value: str) -> tuple[str, int] | None:
    """`host:port` (IPv6 as `[::1]:port`) → (host, port), or None when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def resolve_store_url(url: str, base: Path) -> str:
    """A relative `sqlite:///` path made absolute against `base` (the configuration file's
    folder, as for every other path); any other URL is returned as it is."""
    path = sqlite_path(url)
    if path is None or Path(path).is_absolute():
        return url
    return SQLITE_PREFIX + str((base / path).resolve())


@dataclass(frozen=True)
class EngineSettings:
    store: str = field(
        default="sqlite:///var/ins-engine.db",
        metadata=doc(
            "store URL: sqlite:///relative/to/this/file.db, sqlite:////absolute.db, or "
            "postgresql://USER@HOST:PORT/DB (libpq parameters such as ?sslmode=verify-full)",
            resolve=resolve_store_url,
        ),
    )
    store_password_env: str | None = field(
        default=None,
        metadata=doc(
            "environment variable holding the PostgreSQL password (never in the file); "
            "unset: libpq's PGPASSWORD or ~/.pgpass"
        ),
    )
    lease_s: float = field(
        default=10.0,
        metadata=doc(
            "PostgreSQL store: how long an engine's lease on routing or on a queue lasts "
            "unless renewed; another engine takes over within this after it dies"
        ),
    )
    wal_limit_mb: int = field(
        default=LIMIT_MB,
        metadata=doc(
            "SQLite store: once its write-ahead log passes this many megabytes it is "
            "checkpointed and started again from its beginning; emptied when idle"
        ),
    )
    store_timeout_s: float = field(
        default=STORE_TIMEOUT_S,
        metadata=doc(
            "how long a received message may wait for its commit; then the sender gets AE "
            "(not stored, resend) rather than wait past its own ACK timeout"
        ),
    )
    log_level: str = field(default="info", metadata=doc("debug, info, warning or error"))
    log_format: str = field(
        default="auto", metadata=doc("auto (console on a terminal, else JSON), json or console")
    )
    retention_days: float = field(
        default=30.0, metadata=doc("delivered messages older than this are pruned")
    )
    processes: int = field(
        default=0,
        metadata=doc(
            "1: one process does everything; 2: delivery runs in a process of its own, on "
            "another core; 0: 2 when the engine may use more than one core"
        ),
    )
    shutdown_grace_s: float = field(
        default=10.0, metadata=doc("on SIGTERM, how long in-flight work may take to finish")
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        store_problem = url_problem(self.store)
        if store_problem:
            found.append(("store", store_problem))
        if self.store_password_env is not None and not self.store_password_env.strip():
            found.append(("store_password_env", "the name of an environment variable"))
        if not 1.0 <= self.lease_s <= 300.0:
            found.append(("lease_s", "seconds from 1 to 300"))
        if not 1 <= self.wal_limit_mb <= 4096:
            found.append(("wal_limit_mb", "a whole number of megabytes from 1 to 4096"))
        if not 0.1 <= self.store_timeout_s <= 30.0:
            found.append(("store_timeout_s", "seconds from 0.1 to 30"))
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            found.append(("log_level", "one of debug, info, warning, error"))
        if self.log_format not in ("auto", "json", "console"):
            found.append(("log_format", "one of auto, json, console"))
        if self.retention_days <= 0:
            found.append(("retention_days", "a number of days > 0"))
        if self.shutdown_grace_s < 0:
            found.append(("shutdown_grace_s", "a number of seconds >= 0"))
        if self.processes not in (0, 1, 2):
            found.append(("processes", "0 (as many as the machine has cores, up to 2), 1 or 2"))
        return found


@dataclass(frozen=True)
class ListenerTls:
    cert: str = field(metadata=doc("server certificate chain (PEM)", path=True))
    key: str = field(metadata=doc("private key of `cert` (PEM)", path=True))
    client_ca: str | None = field(
        default=None,
        metadata=doc(
            "CA bundle (PEM): when set, clients must present a certificate it signs", path=True
        ),
    )


@dataclass(frozen=True)
class ClientTls:
    ca: str | None = field(
        default=None, metadata=doc("CA bundle (PEM) for the server; default: system CAs", path=True)
    )
    cert: str | None = field(default=None, metadata=doc("client certificate (PEM)", path=True))
    key: str | None = field(default=None, metadata=doc("private key of `cert`", path=True))
    server_name: str | None = field(
        default=None, metadata=doc("name checked in the server certificate; default the host")
    )

    def problems(self) -> list[tuple[str, str]]:
        if bool(self.cert) != bool(self.key):
            return [("key" if self.cert else "cert", "cert and key go together")]
        return []


@dataclass(frozen=True)
class StepSettings:
    """One entry of a route's `steps`: the keys every step has; the kind's own keys are read
    into `settings`, an instance of the dataclass the kind registered."""

    kind: str = field(metadata=doc('the step kind (see "Step kinds")'))
    name: str = field(
        default="", metadata=doc("the step's name in decisions and route tests; default the kind")
    )
    before_ack: bool = field(
        default=False,
        metadata=doc("run before the ACK (filter, validate): AE/AR answers, drops are stored"),
    )
    settings: Any = field(default=None, metadata=doc("", internal=True))


@dataclass(frozen=True)
class DestinationSettings:
    name: str = field(metadata=doc("destination name, unique in its route"))
    mllp: str | None = field(default=None, metadata=doc("host:port of an MLLP receiver"))
    file: str | None = field(
        default=None, metadata=doc("folder receiving one file per message", path=True)
    )
    kind_tables: Mapping[str, Any] = field(
        default_factory=dict, metadata=doc("", slot=DESTINATION_TABLES)
    )  # the table of an installed destination kind, such as `fhir`
    accept: list[str] = field(
        default_factory=lambda: ["*"],
        metadata=doc("MSH-9 TYPE^EVENT patterns this destination takes, as the route's accept"),
    )
    steps: list[StepSettings] = field(
        default_factory=list,
        metadata=doc("steps for this destination only, after the route's (not before the ACK)"),
    )
    tls: ClientTls | None = field(
        default=None, metadata=doc("TLS towards the receiver (MLLP, or a FHIR server: mutual TLS)")
    )
    connect_timeout_s: float = field(default=10.0, metadata=doc("connect timeout, seconds"))
    ack_timeout_s: float = field(
        default=30.0, metadata=doc("wait for the ACK (MLLP) or the answer (FHIR), seconds")
    )
    max_attempts: int = field(
        default=10, metadata=doc("attempts before on_failure applies (AE/CE, timeouts)")
    )
    max_mismatched_acks: int = field(
        default=5,
        metadata=doc(
            "MLLP: ACKs of another message (MSA-2 not the sent MSH-10) before the message is "
            "parked, whatever on_failure says"
        ),
    )
    backoff_base_s: float = field(default=1.0, metadata=doc("first retry delay, seconds"))
    backoff_cap_s: float = field(default=60.0, metadata=doc("longest retry delay, seconds"))
    on_failure: str = field(
        default="block",
        metadata=doc("block: keep retrying the head message; park: park it and go on"),
    )
    parallel_by: str | None = field(
        default=None, metadata=doc('"patient": parallel connections, order kept per patient')
    )
    connections: int = field(default=4, metadata=doc("connections used with parallel_by"))

    def problems(self) -> list[tuple[str, str]]:
        found = []
        tables = [name for name, table in self.kind_tables.items() if table is not None]
        if (self.mllp is not None) + (self.file is not None) + len(tables) != 1:
            others = "".join(f", {name} = {{ ... }}" for name in self.kind_tables)
            found.append(("mllp", f'exactly one of mllp = "host:port", file = "dir"{others}'))
        if self.mllp is not None and parse_address(self.mllp) is None:
            found.append(("mllp", "host:port"))
        kinds = installed(DESTINATION_KINDS).kinds
        tls_users = ["mllp", *(kind.name for kind in kinds.values() if kind.uses_tls)]
        if self.tls is not None and self.mllp is None and not set(tables) & set(tls_users):
            found.append(("tls", f"TLS applies to a destination of kind {' or '.join(tls_users)}"))
        if self.on_failure not in ("block", "park"):
            found.append(("on_failure", '"block" or "park"'))
        if self.parallel_by not in (None, "patient"):
            found.append(("parallel_by", '"patient" or absent'))
        if not self.accept or any(not pattern.strip() for pattern in self.accept):
            found.append(("accept", 'a non-empty list of patterns like "ADT^A28" or "*"'))
        found.extend(step_problems(self.steps, "steps"))
        for index, step in enumerate(self.steps):
            if step.before_ack:
                found.append((f"steps[{index}].before_ack", "false: a route step may be"))
        for key, ok, expected in (
            ("connect_timeout_s", self.connect_timeout_s > 0, "seconds > 0"),
            ("ack_timeout_s", self.ack_timeout_s > 0, "seconds > 0"),
            ("max_attempts", self.max_attempts >= 1, "an integer >= 1"),
            ("max_mismatched_acks", self.max_mismatched_acks >= 1, "an integer >= 1"),
            ("backoff_base_s", self.backoff_base_s > 0, "seconds > 0"),
            ("backoff_cap_s", self.backoff_cap_s >= self.backoff_base_s, ">= backoff_base_s"),
            ("connections", 1 <= self.connections <= 64, "an integer from 1 to 64"),
        ):
            if not ok:
                found.append((key, expected))
        return found


@dataclass(frozen=True)
class RouteSettings:
    name: str = field(metadata=doc("route name (letters, digits, - and _)"))
    listen: str = field(metadata=doc("host:port the MLLP listener binds"))
    accept: list[str] = field(
        default_factory=lambda: ["ADT^*"],
        metadata=doc("accepted MSH-9 TYPE^EVENT patterns, * wildcards; others get AR"),
    )
    tls: ListenerTls | None = field(default=None, metadata=doc("TLS on the listener"))
    allow: list[str] = field(
        default_factory=list,
        metadata=doc("source addresses or networks allowed to connect; empty = any"),
    )
    max_connections: int = field(
        default=32,
        metadata=doc(
            "connections served at once; at the limit a new one displaces one that never "
            "completed a block, trickles one or leaves its ACK unread, else is refused "
            '(see "Connections at the limit")'
        ),
    )
    max_connections_per_address: int | None = field(
        default=None,
        metadata=doc(
            "connections from one source address; at it, a new one from there may displace "
            "only that address's own; unset: max_connections"
        ),
    )
    max_accepts_per_s: float = field(
        default=100.0,
        metadata=doc(
            "new connections a second from one source address (bursts of max_connections); "
            "beyond, refused at once"
        ),
    )
    max_frame_bytes: int = field(default=1024 * 1024, metadata=doc("largest MLLP block"))
    frame_timeout_s: float = field(
        default=30.0,
        metadata=doc(
            "time a block may take to complete, from its first byte (also the TLS handshake "
            "limit, the time an ACK may wait to be read, and how long a connection that "
            "completed a block keeps its slot)"
        ),
    )
    idle_timeout_s: float = field(
        default=600.0, metadata=doc("a connection idle this long between blocks is closed")
    )
    mllp_release2: bool = field(
        default=False,
        metadata=doc("answer each block with an MLLP R2 commit block (0x06/0x15), no HL7 ACK"),
    )
    charset: str | None = field(
        default=None, metadata=doc("force this charset whatever MSH-18 says")
    )
    default_charset: str = field(
        default="8859/1", metadata=doc("charset of messages whose MSH-18 is empty")
    )
    fallback_charset: str | None = field(
        default=None, metadata=doc("charset tried when the declared one does not decode")
    )
    kind_keys: Mapping[str, Any] = field(
        default_factory=dict, metadata=doc("", slot=ROUTE_KEYS)
    )  # keys the installed step kinds add to a route, such as `enrich`
    steps: list[StepSettings] | None = field(
        default=None, metadata=doc('the route\'s steps, in order (see "Route steps")')
    )
    destinations: list[DestinationSettings] = field(
        default_factory=list, metadata=doc("where accepted messages are delivered, in order")
    )
    guards: Mapping[str, Any] = field(
        default_factory=dict, metadata=doc("", slot=ROUTE_GUARDS)
    )  # each outbound guard's table, named after its kind (`ins_guard`)
    source: str = field(default="", metadata=doc("", internal=True))  # the file it is in
    key: str = field(default="", metadata=doc("", internal=True))  # its key there, or ""

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            found.append(("name", "letters, digits, - and _"))
        if parse_address(self.listen) is None:
            found.append(("listen", "host:port, e.g. 127.0.0.1:2575"))
        if not self.accept or any(not pattern.strip() for pattern in self.accept):
            found.append(("accept", 'a non-empty list of patterns like "ADT^A28" or "ADT^*"'))
        for index, entry in enumerate(self.allow):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                found.append((f"allow[{index}]", "an IP address or network (CIDR)"))
        for key, value in (
            ("charset", self.charset),
            ("default_charset", self.default_charset),
            ("fallback_charset", self.fallback_charset),
        ):
            if value is not None and not is_known(value):
                found.append((key, "an MSH-18 value (ASCII, 8859/1, UNICODE UTF-8...)"))
        for key, ok, expected in (
            ("max_connections", self.max_connections >= 1, "an integer >= 1"),
            (
                "max_connections_per_address",
                self.max_connections_per_address is None or self.max_connections_per_address >= 1,
                "an integer >= 1",
            ),
            ("max_accepts_per_s", self.max_accepts_per_s > 0, "connections a second > 0"),
            ("max_frame_bytes", self.max_frame_bytes >= 1024, "an integer >= 1024"),
            ("frame_timeout_s", self.frame_timeout_s > 0, "seconds > 0"),
            ("idle_timeout_s", self.idle_timeout_s > 0, "seconds > 0"),
        ):
            if not ok:
                found.append((key, expected))
        names = [destination.name for destination in self.destinations]
        for index, name in enumerate(names):
            if name in names[:index]:
                found.append((f"destinations[{index}].name", "a name unique in this route"))
        if self.steps is not None:
            for kind in installed(STEP_KINDS).kinds.values():
                for key in kind.route_keys:
                    if self.kind_keys.get(key.name) is not None:
                        found.append(
                            (key.name, f'leave it out with steps: give a kind = "{kind.name}" step')
                        )
            found.extend(step_problems(self.steps, "steps"))
        return found

    def __getattr__(self, name: str) -> Any:
        """A key an installed kind added (`route.enrich`) or a guard's table (`route.ins_guard`)."""
        for slot in ("kind_keys", "guards"):
            values = self.__dict__.get(slot, {})
            if name in values:
                return values[name]
        raise AttributeError(name)

    def where(self, key: str) -> tuple[str, str]:
        """The file this route is in and the full key there of one of its keys (errors)."""
        return self.source, join(self.key, key)

    def guard_settings(self, name: str) -> Any | None:
        """An outbound guard's settings: the route's table named after its kind (None for a
        route made by hand rather than loaded: the guard's defaults then apply)."""
        return self.guards.get(name)

    def uses(self, kind: str) -> bool:
        """Whether a step of this kind runs on this route (so its sections are used)."""
        steps = [*self.step_list(), *(step for d in self.destinations for step in d.steps)]
        return any(step.kind == kind for step in steps)

    def step_list(self) -> list[StepSettings]:
        """The route's steps: those it names, or those the kinds run on a route that names
        none (one `ins_enrich` step unless `enrich = false`, as earlier configurations)."""
        if self.steps is not None:
            return self.steps
        implicit = []
        for kind in installed(STEP_KINDS).kinds.values():
            settings = kind.implicit_step(self.kind_keys) if kind.implicit_step else None
            if settings is not None:
                implicit.append(StepSettings(kind.name, kind.name, settings=settings))
        return implicit


def step_problems(steps: list[StepSettings], key: str) -> list[tuple[str, str]]:
    """Names unique in the list; steps before the ACK first."""
    found = []
    for index, step in enumerate(steps):
        if not _NAME.fullmatch(step.name):
            found.append((f"{key}[{index}].name", "letters, digits, - and _"))
        if step.name in [other.name for other in steps[:index]]:
            found.append((f"{key}[{index}].name", "a name unique among these steps"))
        if step.before_ack and not all(other.before_ack for other in steps[:index]):
            found.append((f"{key}[{index}].before_ack", "steps before the ACK come first"))
    return found


@dataclass(frozen=True)
class OidcRoles:
    """Which values of the roles claim give which console role (the highest one counts)."""

    viewer: list[str] = field(default_factory=list, metadata=doc("claim values for viewer"))
    operator: list[str] = field(default_factory=list, metadata=doc("claim values for operator"))
    vigilance: list[str] = field(default_factory=list, metadata=doc("claim values for vigilance"))

    def problems(self) -> list[tuple[str, str]]:
        if not (self.viewer or self.operator or self.vigilance):
            return [("-", "at least one claim value mapped to a role")]
        return []


@dataclass(frozen=True)
class OidcSettings:
    """Single sign-on on the console with the hospital's OpenID Connect provider."""

    issuer: str = field(metadata=doc("the provider's issuer URL (its discovery document is there)"))
    client_id: str = field(metadata=doc("the console's client id at the provider"))
    client_secret_env: str = field(
        default="INS_ENGINE_OIDC_SECRET",
        metadata=doc("environment variable holding the client secret"),
    )
    scopes: list[str] = field(
        default_factory=lambda: ["openid", "profile"],
        metadata=doc("scopes asked for (`openid` is added when missing)"),
    )
    roles_claim: str = field(
        default="groups",
        metadata=doc("ID token claim holding the user's roles or groups (a.b for a nested one)"),
    )
    user_claim: str = field(
        default="preferred_username",
        metadata=doc("ID token claim naming the user in the audit (default: then `sub`)"),
    )
    roles: OidcRoles = field(
        default_factory=OidcRoles, metadata=doc("claim values mapped to console roles")
    )
    label: str = field(
        default="single sign-on", metadata=doc("the login page's button: Sign in with LABEL")
    )
    redirect_url: str | None = field(
        default=None,
        metadata=doc(
            "the URL the provider sends the browser back to (registered there); default "
            "/login/oidc/callback on the host the browser asked for"
        ),
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        for key, value in (("issuer", self.issuer), ("redirect_url", self.redirect_url)):
            if value is not None and not re.fullmatch(r"https?://[^/?#\s]+[^?#\s]*", value):
                found.append((key, "an http(s) URL without query"))
        if not self.client_secret_env.replace("_", "").isalnum():
            found.append(("client_secret_env", "an environment variable name (letters, digits, _)"))
        if not self.client_id:
            found.append(("client_id", "a client id"))
        return found


@dataclass(frozen=True)
class HttpSettings:
    """The engine's one HTTP listener: health, metrics, the console and the enrichment API."""

    listen: str = field(metadata=doc("host:port of the HTTP listener (no [http] table: none)"))
    tls: ListenerTls | None = field(default=None, metadata=doc("TLS on the HTTP listener"))
    users: str | None = field(
        default=None,
        metadata=doc("console users file, written by `ins-engine user add`", path=True),
    )
    metrics_token_env: str | None = field(
        default=None,
        metadata=doc("environment variable holding a bearer token /metrics then requires"),
    )
    api_token_env: str = field(
        default="INS_ENGINE_API_TOKEN",
        metadata=doc("environment variable holding the bearer token of /api/v1/enrich"),
    )
    api_route: str | None = field(
        default=None, metadata=doc("route whose steps /api/v1/enrich runs; default the first")
    )
    oidc: OidcSettings | None = field(
        default=None, metadata=doc("single sign-on with an OpenID Connect provider")
    )
    secure_cookies: bool | None = field(
        default=None,
        metadata=doc("mark session cookies Secure; default: only when `tls` is set"),
    )
    session_idle_s: float = field(
        default=1800.0, metadata=doc("a console session unused this long ends, seconds")
    )
    session_max_s: float = field(
        default=43200.0, metadata=doc("a console session ends this long after login, seconds")
    )
    login_max_failures: int = field(
        default=5, metadata=doc("wrong passwords per user and client before a lockout")
    )
    login_lockout_s: float = field(
        default=900.0, metadata=doc("how long logins are refused after too many failures")
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata=doc(
            "addresses of reverse proxies in front of the console: for a request from one, the "
            "client is the last X-Forwarded-For address (the login brake counts per client)"
        ),
    )
    max_connections: int = field(
        default=256,
        metadata=doc(
            "connections served at once (TLS handshakes included); beyond, a new one is "
            "closed at once; lowered at start to what the open-file limit leaves"
        ),
    )
    reserved_fds: int = field(
        default=256,
        metadata=doc(
            "file descriptors the HTTP listener leaves to the MLLP listeners, deliveries and "
            "the store: it holds at most the open-file limit minus these and those open at start"
        ),
    )
    header_timeout_s: float = field(
        default=10.0,
        metadata=doc(
            "a request's head must arrive within this, from its first byte (from the "
            "connection's opening for the first request), seconds"
        ),
    )
    body_timeout_s: float = field(
        default=60.0,
        metadata=doc("a request's body must arrive within this after its head, seconds"),
    )
    idle_timeout_s: float = field(
        default=60.0,
        metadata=doc(
            "a connection that has answered and gets no new request (or does not read the "
            "answer) this long is closed, seconds"
        ),
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if parse_address(self.listen) is None:
            found.append(("listen", "host:port, e.g. 127.0.0.1:8080"))
        for key, value in (
            ("metrics_token_env", self.metrics_token_env),
            ("api_token_env", self.api_token_env),
        ):
            if value is not None and not value.replace("_", "").isalnum():
                found.append((key, "an environment variable name (letters, digits, _)"))
        for index, entry in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_address(entry)
            except ValueError:
                found.append((f"trusted_proxies[{index}]", "an IP address"))
        for key, ok, expected in (
            ("session_idle_s", self.session_idle_s > 0, "seconds > 0"),
            ("session_max_s", self.session_max_s >= self.session_idle_s, ">= session_idle_s"),
            ("login_max_failures", self.login_max_failures >= 1, "an integer >= 1"),
            ("login_lockout_s", self.login_lockout_s > 0, "seconds > 0"),
            ("max_connections", self.max_connections >= 1, "an integer >= 1"),
            ("reserved_fds", self.reserved_fds >= 0, "an integer >= 0"),
            ("header_timeout_s", self.header_timeout_s > 0, "seconds > 0"),
            ("body_timeout_s", self.body_timeout_s > 0, "seconds > 0"),
            ("idle_timeout_s", self.idle_timeout_s > 0, "seconds > 0"),
        ):
            if not ok:
                found.append((key, expected))
        return found


@dataclass(frozen=True)
class Config:
    """The whole configuration: one file, and the route files it names."""

    route_files: list[str] = field(
        default_factory=list,
        metadata=doc(
            "glob patterns of route files, relative to this file's folder; a route file holds "
            "one route's keys at its top level"
        ),
    )
    engine: EngineSettings = field(default_factory=EngineSettings, metadata=doc("engine"))
    sections: Mapping[str, Any] = field(
        default_factory=dict, metadata=doc("", slot=SECTIONS)
    )  # the installed kinds' engine-wide sections, such as [insi]
    http: HttpSettings | None = field(default=None, metadata=doc("HTTP listener"))
    routes: list[RouteSettings] = field(default_factory=list, metadata=doc("routes"))
    source: str = field(default="<defaults>", metadata=doc("", internal=True))

    def __getattr__(self, name: str) -> Any:
        """An installed kind's section (`config.insi`)."""
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    def with_section(self, name: str, section: Any) -> Config:
        """This configuration with one kind's section replaced (route tests' own `[insi]`)."""
        return replace(self, sections={**self.sections, name: section})


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file and its route files; raises `ConfigErrors`
    listing every error, each naming the file (the route file where the key is) and the key."""
    file = Path(path)
    data = read_toml(file, "configuration file")
    builder = _builder(file)
    config = builder.build(Config, data, "")
    errors = builder.errors
    routes: list[RouteSettings] = []
    if config is not INVALID:
        routes = [
            replace(route, source=str(file), key=f"routes[{index}]")
            for index, route in enumerate(config.routes)
        ]
    # The route files are read even when the engine file has errors: one run names them all.
    for route_file in _route_files(_route_patterns(config, data), file, errors):
        route_builder = _builder(route_file)
        try:
            route = route_builder.build(RouteSettings, read_toml(route_file, "route file"), "")
        except ConfigError as error:  # unreadable: the other files are still checked
            errors.append(error)
            continue
        errors += route_builder.errors
        if route is not INVALID:
            routes.append(replace(route, source=str(route_file)))
    # With the engine file's own routes unknown, "at least one route" cannot be said.
    if config is not INVALID or routes:
        errors += _route_problems(routes, str(file))
    if config is not INVALID and config.http is not None:
        errors += _http_problems(config.http, routes, str(file))
    if errors:
        raise ConfigErrors(errors)
    # The default store, like a store the file names, is relative to the file's folder.
    store = resolve_store_url(config.engine.store, file.resolve().parent)
    engine = replace(config.engine, store=store)
    return replace(config, engine=engine, routes=routes, source=str(file))


def build_section(cls: type[T], table: dict[str, Any], file: Path) -> T:
    """A section read from a table found beside the configuration (a route test's case),
    with the same checks and errors; its paths are relative to `file`'s folder."""
    builder = _builder(file)
    section: T = builder.build(cls, table, "")
    if builder.errors:
        raise ConfigErrors(builder.errors)
    return section


def documented_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) for every key, the installed kinds' included: the
    configuration reference."""
    return _documented_keys(cls, prefix, _slots())


def _builder(file: Path) -> Builder:
    """A builder for one file: paths relative to its folder, the kinds' keys in the slots."""
    return Builder(str(file), file.resolve().parent, _slots(), {StepSettings: _read_step})


def _slots() -> dict[str, Sequence[Key]]:
    """What the installed kinds declare: their sections, their route keys, their guards'
    tables, the destination kinds' tables (each name once, the first kind's)."""
    steps = list(installed(STEP_KINDS).kinds.values())
    guards = installed(GUARD_KINDS).kinds.values()
    declared = {
        SECTIONS: [key for kind in steps for key in kind.sections],
        ROUTE_KEYS: [key for kind in steps for key in kind.route_keys],
        ROUTE_GUARDS: [Key(guard.name, guard.settings, guard.settings) for guard in guards],
        DESTINATION_TABLES: [
            Key(kind.name, kind.settings | None, doc=kind.doc)
            for kind in installed(DESTINATION_KINDS).kinds.values()
        ],
    }
    return {slot: _first_of_each(keys) for slot, keys in declared.items()}


def _first_of_each(keys: list[Key]) -> list[Key]:
    named: dict[str, Key] = {}
    for key in keys:
        named.setdefault(key.name, key)
    return list(named.values())


def _route_patterns(config: Config | Invalid, data: dict[str, Any]) -> list[str]:
    """`route_files` as read, or, in an engine file with errors elsewhere, as written when
    it is a list of strings (a wrong `route_files` is already reported: no route file then)."""
    if not isinstance(config, Invalid):
        return config.route_files
    patterns = data.get("route_files", [])
    if isinstance(patterns, list) and all(isinstance(pattern, str) for pattern in patterns):
        return patterns
    return []


def _route_files(patterns: list[str], file: Path, errors: list[ConfigError]) -> list[Path]:
    """The files `route_files` names, in pattern order then path order, each once, never
    the configuration file itself; a pattern matching nothing is an error."""
    found: dict[Path, Path] = {file.resolve(): file}
    for index, pattern in enumerate(patterns):
        matches = sorted(path for path in file.parent.glob(pattern) if path.is_file())
        if not matches:
            errors.append(
                ConfigError(
                    str(file),
                    f"route_files[{index}]",
                    f"a pattern matching files ({pattern!r}: none)",
                )
            )
        for path in matches:
            found.setdefault(path.resolve(), path)
    return list(found.values())[1:]


def _route_problems(routes: list[RouteSettings], file: str) -> list[ConfigError]:
    """At least one route; names and listen addresses unique across every file."""
    if not routes:
        return [ConfigError(file, "routes", "at least one [[routes]] table or route file")]
    found = []
    for index, route in enumerate(routes):
        for other in routes[:index]:
            elsewhere = "" if other.source == route.source else f" (also in {other.source})"
            if route.name == other.name:
                found.append(ConfigError(*route.where("name"), f"a route name unique{elsewhere}"))
            if route.listen == other.listen:
                found.append(
                    ConfigError(
                        *route.where("listen"), f"an address no other route listens on{elsewhere}"
                    )
                )
    return found


def _http_problems(http: HttpSettings, routes: list[RouteSettings], file: str) -> list[ConfigError]:
    """The HTTP listener's address is no route's; the API's route exists."""
    found = []
    if http.listen in [route.listen for route in routes] and not http.listen.endswith(":0"):
        found.append(ConfigError(file, "http.listen", "an address no route listens on"))
    names = [route.name for route in routes]
    if http.api_route is not None and http.api_route not in names:
        found.append(
            ConfigError(file, "http.api_route", f"the name of a route ({', '.join(names)})")
        )
    return found


def _read_step(builder: Builder, table: Any, path: str) -> StepSettings | Invalid:
    """A step's table: the common keys, and the kind's own keys into its settings."""
    if not isinstance(table, dict):
        return builder.report(path, "a table")
    name = table.get("kind")
    if not isinstance(name, str):
        return builder.report(join(path, "kind"), "the step's kind, a string")
    kinds = installed(STEP_KINDS)
    kind = kinds.kinds.get(name)
    if kind is None:
        return builder.report(join(path, "kind"), kinds.unknown(name))
    common = frozenset(f.name for f in dataclasses.fields(StepSettings))
    settings = builder.build(
        kind.settings, {k: v for k, v in table.items() if k not in common}, path, common
    )
    step_name = builder.value(str, table.get("name", name), join(path, "name"))
    before_ack = builder.value(bool, table.get("before_ack", False), join(path, "before_ack"))
    if any(value is INVALID for value in (settings, step_name, before_ack)):
        return INVALID
    if before_ack and not kind.before_ack:
        deciding = sorted(other.name for other in kinds.kinds.values() if other.before_ack)
        return builder.report(
            join(path, "before_ack"),
            "false: only kinds that decide at once without changing the message "
            f"({', '.join(deciding)}) run before the ACK",
        )
    placement = getattr(settings, "placement_problems", None)
    misplaced = placement(before_ack) if placement else []
    for key, expected in misplaced:
        builder.report(join(path, key), expected)
    if misplaced:
        return INVALID
    return StepSettings(kind=name, name=step_name, before_ack=before_ack, settings=settings)
