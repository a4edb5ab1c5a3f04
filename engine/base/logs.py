"""Logging, configured in one place: structlog processors ending in JSON or console lines.

Patient data must never reach a log line. Rather than trusting every call site, the
redaction processor lets through only values of keys known to carry operational facts
(control ids, types, routes, sizes, durations, outcomes); any other key keeps its name but
loses a non-numeric value. Exceptions are rendered as their type and traceback frames; their
text is kept only for the engine's own errors, whose texts are written to be safe.
Third-party loggers are held at WARNING so that no library dumps a payload at DEBUG.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

from engine.errors import EngineError

SAFE_KEYS = frozenset(
    """
    event level timestamp logger exception
    route destination listen peer tls address url path file config pid lease engine
    control_id message_id message_type size bytes count duration_ms position
    outcome code ack_code error_code status error reason calls attempts simulated
    pending parked delay_s step added changed removed
    """.split()
)
REDACTED = "[redacted]"
_NUMBERS = frozenset({bool, int, float})


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask the value of every key not known to be free of patient data; drop None values."""
    return {
        key: value if key in SAFE_KEYS or type(value) in _NUMBERS else REDACTED
        for key, value in event_dict.items()
        if value is not None
    }


def render_exception(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace exc_info by a text whose only free text comes from the engine's own errors."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    error = exc_info[1]
    if error is None:
        return event_dict
    event_dict["exception"] = safe_exception_text(error)
    return event_dict


def safe_exception_text(error: BaseException) -> str:
    """`Type: text` for engine errors, `Type` alone otherwise, then the frames."""
    head = type(error).__qualname__
    if isinstance(error, EngineError):
        head = f"{head}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f"  {frame.filename}:{frame.lineno} in {frame.name}" for frame in frames]
    return "\n".join([head, *lines])


def _json_line(event_dict: Any, **_: Any) -> str:
    """orjson: a JSON line in a few microseconds (json.dumps costs several times more)."""
    return orjson.dumps(event_dict, default=str).decode()


class _Sink:
    """The stream every engine logger writes to: one writer per logger name is kept (a log
    line per message must stay cheap), so `configure_logging` swaps the stream here."""

    stream: TextIO = sys.stderr

    def write(self, text: str) -> None:
        self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


_SINK = _Sink()


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was asked for, so lines can say it."""

    def __init__(self, name: str) -> None:
        super().__init__(_SINK)  # type: ignore[arg-type]
        self.name = name


def _add_logger_name(
    logger: Any, _: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict["logger"] = getattr(logger, "name", "engine")
    return event_dict


@functools.cache
def _named_logger(name: str = "engine") -> _NamedWriteLogger:
    return _NamedWriteLogger(name)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog and the standard library's logging for the whole process.

    The engine's own lines go straight from structlog to the stream (no stdlib logging on
    the hot path: a line per message must stay cheap); third-party libraries' records go
    through the standard library with the same processors. Calling it again (tests do)
    changes the stream, level and format of every logger, and structlog's `capture_logs`
    works as documented.
    """
    stream = stream or sys.stderr
    _SINK.stream = stream
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Any] = [
        # What a caller bound for the work in progress (e.g. the control id of the message
        # whose steps are running) reaches every line logged on its behalf, INSi retries
        # included.
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        render_exception,
        redact,
    ]
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    global _configuration
    _configuration += 1  # every logger binds again, to this configuration
    structlog.configure(
        processors=[_add_logger_name, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=_named_logger,
        cache_logger_on_first_use=False,
    )


_configuration = 0  # how many times `configure_logging` ran


class _Logger:
    """A logger under one of the engine's names, bound once per configuration.

    structlog's lazy proxy binds a new logger at every call, filtered debug lines included:
    a cost paid several times per message. Binding again only when `configure_logging` ran
    keeps reconfiguring (tests do) and `capture_logs` (it edits the processor list in
    place) working."""

    __slots__ = ("_bound", "_configuration", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._configuration = -1

    def __getattr__(self, attribute: str) -> Any:
        if self._configuration != _configuration:
            self._bound = structlog.get_logger(self._name).bind()
            self._configuration = _configuration
        return getattr(self._bound, attribute)


def get_logger(name: str) -> Any:
    """A structlog logger under one of the engine's logger names."""
    return _Logger(name)
