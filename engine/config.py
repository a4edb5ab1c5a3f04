"""Loading the TOML configuration into frozen dataclasses, with errors that name the key.

Every section is a dataclass whose field names are the TOML keys and whose field metadata
carries a one-line `doc`. The loader is generic: it rejects unknown keys, checks types from
the annotations, builds nested tables and arrays of tables, resolves `path` fields against
the config file's folder, and turns each section's `problems()` into a `ConfigError` naming
the file, the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.enrich.settings import EnrichSettings
from engine.errors import ConfigError, ConfigErrors
from engine.hl7.charset import is_known
from engine.ins.settings import InsiSettings

DEFAULT_CONFIG = "routes/default.toml"


def doc(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the README line of a key (and `path=True` for file paths)."""
    return {"doc": text, **extra}


def parse_address(value: str) -> tuple[str, int] | None:
    """`host:port` (IPv6 as `[::1]:port`) → (host, port), or None when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class EngineSettings:
    store: str = field(
        default="sqlite:///var/ins-engine.db",
        metadata=doc(
            "store URL: sqlite:///relative/to/this/file.db or sqlite:////absolute.db",
            store_url=True,
        ),
    )
    log_level: str = field(default="info", metadata=doc("debug, info, warning or error"))
    log_format: str = field(
        default="auto", metadata=doc("auto (console on a terminal, else JSON), json or console")
    )
    retention_days: float = field(
        default=30.0, metadata=doc("delivered messages older than this are pruned")
    )
    shutdown_grace_s: float = field(
        default=10.0, metadata=doc("on SIGTERM, how long in-flight work may take to finish")
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if sqlite_path(self.store) is None:
            found.append(("store", "sqlite:///relative.db or sqlite:////absolute/path.db"))
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            found.append(("log_level", "one of debug, info, warning, error"))
        if self.log_format not in ("auto", "json", "console"):
            found.append(("log_format", "one of auto, json, console"))
        if self.retention_days <= 0:
            found.append(("retention_days", "a number of days > 0"))
        if self.shutdown_grace_s < 0:
            found.append(("shutdown_grace_s", "a number of seconds >= 0"))
        return found


SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str | None:
    """The file path of a `sqlite:///` URL (3 slashes relative, 4 absolute), else None."""
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        return None
    return url[len(SQLITE_PREFIX) :]


def resolve_store_url(url: str, base: Path) -> str:
    """A relative `sqlite:///` path made absolute against `base` (the configuration file's
    folder, as for every other path); any other URL is returned as it is."""
    path = sqlite_path(url)
    if path is None or Path(path).is_absolute():
        return url
    return SQLITE_PREFIX + str((base / path).resolve())


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
class DestinationSettings:
    name: str = field(metadata=doc("destination name, unique in its route"))
    mllp: str | None = field(default=None, metadata=doc("host:port of an MLLP receiver"))
    file: str | None = field(
        default=None, metadata=doc("folder receiving one file per message", path=True)
    )
    tls: ClientTls | None = field(default=None, metadata=doc("TLS towards an MLLP receiver"))
    connect_timeout_s: float = field(default=10.0, metadata=doc("MLLP connect timeout"))
    ack_timeout_s: float = field(default=30.0, metadata=doc("wait for the ACK, seconds"))
    max_attempts: int = field(
        default=10, metadata=doc("attempts before on_failure applies (AE/CE, timeouts)")
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
        if (self.mllp is None) == (self.file is None):
            found.append(("mllp", 'exactly one of mllp = "host:port" or file = "dir"'))
        if self.mllp is not None and parse_address(self.mllp) is None:
            found.append(("mllp", "host:port"))
        if self.tls is not None and self.mllp is None:
            found.append(("tls", "TLS applies to an mllp destination"))
        if self.on_failure not in ("block", "park"):
            found.append(("on_failure", '"block" or "park"'))
        if self.parallel_by not in (None, "patient"):
            found.append(("parallel_by", '"patient" or absent'))
        for key, ok, expected in (
            ("connect_timeout_s", self.connect_timeout_s > 0, "seconds > 0"),
            ("ack_timeout_s", self.ack_timeout_s > 0, "seconds > 0"),
            ("max_attempts", self.max_attempts >= 1, "an integer >= 1"),
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
            "connections served at once; at the limit a new one displaces the one idle the longest"
        ),
    )
    max_frame_bytes: int = field(default=1024 * 1024, metadata=doc("largest MLLP block"))
    frame_timeout_s: float = field(
        default=30.0,
        metadata=doc(
            "time a block may take to complete, from its first byte (also the TLS handshake limit)"
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
    enrich: bool = field(default=True, metadata=doc("add the INS to PID (see enrichment)"))
    enrichment: EnrichSettings = field(
        default_factory=EnrichSettings, metadata=doc("INS enrichment options")
    )
    destinations: list[DestinationSettings] = field(
        default_factory=list, metadata=doc("where accepted messages are delivered, in order")
    )

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
        default=5, metadata=doc("wrong passwords per user or address before a lockout")
    )
    login_lockout_s: float = field(
        default=900.0, metadata=doc("how long logins are refused after too many failures")
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
        for key, ok, expected in (
            ("session_idle_s", self.session_idle_s > 0, "seconds > 0"),
            ("session_max_s", self.session_max_s >= self.session_idle_s, ">= session_idle_s"),
            ("login_max_failures", self.login_max_failures >= 1, "an integer >= 1"),
            ("login_lockout_s", self.login_lockout_s > 0, "seconds > 0"),
        ):
            if not ok:
                found.append((key, expected))
        return found


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    engine: EngineSettings = field(default_factory=EngineSettings, metadata=doc("engine"))
    insi: InsiSettings = field(default_factory=InsiSettings, metadata=doc("INSi service"))
    http: HttpSettings | None = field(default=None, metadata=doc("HTTP listener"))
    routes: list[RouteSettings] = field(default_factory=list, metadata=doc("routes"))
    source: str = field(default="<defaults>", metadata=doc("", internal=True))

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if not self.routes:
            found.append(("routes", "at least one [[routes]] table"))
        names = [route.name for route in self.routes]
        listens = [route.listen for route in self.routes]
        for index, route in enumerate(self.routes):
            if route.name in names[:index]:
                found.append((f"routes[{index}].name", "a route name unique in the file"))
            if route.listen in listens[:index]:
                found.append((f"routes[{index}].listen", "an address no other route listens on"))
        if self.http is not None:
            if self.http.listen in listens and not self.http.listen.endswith(":0"):
                found.append(("http.listen", "an address no route listens on"))
            if self.http.api_route is not None and self.http.api_route not in names:
                found.append(("http.api_route", f"the name of a route ({', '.join(names)})"))
        return found


_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+)\)$")


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file; raises `ConfigErrors` listing every error,
    each naming the file and the key."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(file), "", "no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(str(file), "", "a folder, not a configuration file") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(str(file), "", f"cannot be read ({reason})") from None
    except UnicodeDecodeError:
        raise ConfigError(str(file), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        text = str(error)
        position = _TOML_POSITION.search(text)
        where = position.group(1) if position else ""
        problem = _TOML_POSITION.sub("", text)
        raise ConfigError(str(file), where, f"not valid TOML: {problem}") from None
    data["source"] = str(file)
    builder = _Builder(str(file), file.resolve().parent)
    config = builder.build(Config, data, "")
    if builder.errors:
        raise ConfigErrors(builder.errors)
    return config


class _Invalid:
    """A value that failed its checks (the error is recorded); never reaches a dataclass."""


_INVALID = _Invalid()


class _Builder:
    """Builds the dataclasses from the TOML tables, recording every error instead of
    stopping at the first, so that one `check` names them all."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file
        self.base = base
        self.errors: list[ConfigError] = []

    def report(self, key: str, expected: str) -> _Invalid:
        self.errors.append(ConfigError(self.file, key or "-", expected))
        return _INVALID

    def build(self, cls: type, table: Any, path: str) -> Any:
        if not isinstance(table, dict):
            return self.report(path, "a table")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in table:
            if key not in fields and not (key == "source" and cls is Config):
                known = ", ".join(sorted(fields))
                self.report(_join(path, key), f"unknown key (known keys: {known})")
        values = {}
        failed: set[str] = set()  # fields whose value is wrong: their default stands in
        complete = True
        for name, spec in fields.items():
            key = _join(path, name)
            required = (
                spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            )
            if name not in table:
                if required:
                    self.report(key, "a value (this key is required)")
                    complete = False
                continue
            value = self.value(hints[name], table[name], key)
            if value is _INVALID:
                failed.add(name)
                complete = complete and not required
                continue
            if spec.metadata.get("path") and isinstance(value, str):
                value = str((self.base / value).resolve())
            if spec.metadata.get("store_url") and isinstance(value, str):
                value = resolve_store_url(value, self.base)
            values[name] = value
        if "source" in table and cls is Config:
            values["source"] = table["source"]
        if not complete:
            return _INVALID
        instance = cls(**values)
        problems = getattr(instance, "problems", None)
        for key, expected in problems() if problems else ():
            # A cross-field check of a field already reported would only repeat it.
            if re.split(r"[.\[]", key)[0] not in failed:
                self.report(_join(path, key), expected)
        return _INVALID if failed else instance

    def value(self, hint: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
            return self.value(inner, value, key)
        if origin is list:
            (item,) = typing.get_args(hint)
            if not isinstance(value, list):
                return self.report(key, f"an array of {_plural(item)}")
            items = [self.value(item, entry, f"{key}[{i}]") for i, entry in enumerate(value)]
            return _INVALID if any(entry is _INVALID for entry in items) else items
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        return self.report(key, _describe(hint))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_DESCRIPTIONS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}


def _describe(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "a table"
    return _DESCRIPTIONS.get(hint, str(hint))


def _plural(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "tables"
    return _PLURALS.get(hint, str(hint))


def documented_keys(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) for every key: the README's configuration reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.metadata.get("internal"):
            continue
        key = _join(prefix, spec.name)
        inner = _section_type(hints[spec.name])
        if inner is not None:
            rows.extend(documented_keys(inner, key))
            continue
        if spec.default is not dataclasses.MISSING:
            default = repr(spec.default)
        elif spec.default_factory is not dataclasses.MISSING:
            default = repr(spec.default_factory())
        else:
            default = "(required)"
        rows.append((key, default, spec.metadata.get("doc", "")))
    return rows


def _section_type(hint: Any) -> type | None:
    """The dataclass behind a section key (`X`, `X | None`, `list[X]`), or None."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate  # type: ignore[return-value]
    return None
