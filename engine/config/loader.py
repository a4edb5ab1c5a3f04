"""TOML tables into frozen dataclasses, with errors that name the file and the key.

Generic: it knows no section of the engine, no plug-in and no step kind. Every section is a
dataclass whose field names are the TOML keys and whose field metadata carries a one-line
`doc`. The builder rejects unknown keys, checks types from the annotations and parses each
value once into its typed value, builds nested tables and arrays of tables, resolves `path`
fields (and fields with a `resolve` function) against the file's folder, and turns each
section's `problems()` into a `ConfigError` naming the file, the key and what is expected.

Two hooks let the caller extend a section without this module knowing about it: a *slot*,
a mapping field (metadata `slot=NAME`) holding the keys someone declares at load time
(`Key`), and a *reader*, a function that builds the values of one type itself (a route's
step, whose keys depend on its kind).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

_TOML_POSITION = re.compile(r"\s*\(at (line \d+, column \d+)\)$")


def doc(text: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the reference line of a key (and `path=True` for file paths)."""
    return {"doc": text, **extra}


@dataclass(frozen=True)
class Key:
    """A key declared at load time into a section's slot (a plug-in's table or option)."""

    name: str
    hint: Any  # the type its value is parsed into, as a field annotation would say
    default: Callable[[], Any] = lambda: None
    doc: str = ""


class Invalid:
    """A value that failed its checks (the error is recorded); never reaches a dataclass."""


INVALID = Invalid()

Reader = Callable[["Builder", Any, str], Any]


def read_toml(file: Path, what: str) -> dict[str, Any]:
    """A TOML file's table; unreadable or invalid, a `ConfigError` naming the file and why."""
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(file), "", f"no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(str(file), "", f"a folder, not a {what}") from None
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


@dataclass(frozen=True)
class _Entry:
    """One key of a section as the builder reads it: a field's, or one declared in a slot."""

    name: str
    hint: Any
    default: Callable[[], Any] | None  # None: the key is required
    metadata: Mapping[str, Any]
    slot: str | None  # the slot field it is stored in, None for a field of its own


class Builder:
    """Builds the dataclasses from the TOML tables, recording every error instead of
    stopping at the first, so that one `check` names them all."""

    def __init__(
        self,
        file: str,
        base: Path,
        slots: Mapping[str, Sequence[Key]] | None = None,
        readers: Mapping[Any, Reader] | None = None,
    ) -> None:
        self.file = file
        self.base = base
        self.slots = slots or {}
        self.readers = readers or {}
        self.errors: list[ConfigError] = []

    def report(self, key: str, expected: str) -> Invalid:
        self.errors.append(ConfigError(self.file, key or "-", expected))
        return INVALID

    def build(self, cls: type, table: Any, path: str, shared: frozenset[str] = frozenset()) -> Any:
        """An instance of `cls` from `table`; keys in `shared` belong to an enclosing table."""
        if not isinstance(table, dict):
            return self.report(path, "a table")
        entries = {entry.name: entry for entry in _entries(cls, self.slots)}
        for key in table:
            if key not in entries and key not in shared:
                known = ", ".join(sorted({*entries, *shared}))
                self.report(join(path, key), f"unknown key (known keys: {known})")
        values: dict[str, Any] = {}
        slotted: dict[str, dict[str, Any]] = {
            spec.name: {} for spec in dataclasses.fields(cls) if spec.metadata.get("slot")
        }
        failed: set[str] = set()  # keys whose value is wrong: their default stands in
        complete = True
        for name, entry in entries.items():
            key = join(path, name)
            if name not in table:
                if entry.default is None:
                    self.report(key, "a value (this key is required)")
                    complete = False
                elif entry.slot is not None:
                    slotted[entry.slot][name] = entry.default()
                continue
            value = self.value(entry.hint, table[name], key)
            if value is INVALID:
                failed.add(name)
                complete = complete and entry.default is not None
                continue
            if entry.metadata.get("path") and isinstance(value, str):
                value = str((self.base / value).resolve())
            resolve = entry.metadata.get("resolve")
            if resolve is not None and isinstance(value, str):
                value = resolve(value, self.base)
            if entry.slot is None:
                values[name] = value
            else:
                slotted[entry.slot][name] = value
        if not complete:
            return INVALID
        instance = cls(**values, **slotted)
        problems = getattr(instance, "problems", None)
        for key, expected in problems() if problems else ():
            # A cross-field check of a field already reported would only repeat it.
            if re.split(r"[.\[]", key)[0] not in failed:
                self.report(join(path, key), expected)
        return INVALID if failed else instance

    def value(self, hint: Any, value: Any, key: str) -> Any:
        """`value` parsed into `hint` (a type as annotations write it), or INVALID."""
        reader = self.readers.get(hint)
        if reader is not None:
            return reader(self, value, key)
        origin = typing.get_origin(hint)
        if origin in (types.UnionType, typing.Union):
            inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
            return self.value(inner, value, key)
        if origin is list:
            (item,) = typing.get_args(hint)
            if not isinstance(value, list):
                return self.report(key, f"an array of {_plural(item)}")
            items = [self.value(item, entry, f"{key}[{i}]") for i, entry in enumerate(value)]
            return INVALID if any(entry is INVALID for entry in items) else items
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        return self.report(key, _describe(hint))


def _entries(cls: type, slots: Mapping[str, Sequence[Key]]) -> Iterator[_Entry]:
    """The keys of `cls` in order, a slot's declared keys where the slot field stands."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        if spec.metadata.get("internal"):
            continue
        slot = spec.metadata.get("slot")
        if slot is not None:
            for key in slots.get(slot, ()):
                yield _Entry(key.name, key.hint, key.default, {"doc": key.doc}, spec.name)
            continue
        yield _Entry(spec.name, hints[spec.name], _field_default(spec), spec.metadata, None)


def _field_default(spec: dataclasses.Field[Any]) -> Callable[[], Any] | None:
    if spec.default is not dataclasses.MISSING:
        value = spec.default
        return lambda: value
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory
    return None


def join(path: str, key: str) -> str:
    """A key's full name under `path` (`routes[0]` + `name` → `routes[0].name`)."""
    return f"{path}.{key}" if path else key


_DESCRIPTIONS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dt.datetime: "a date and time such as 2025-01-01T12:00:00Z",
}
_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}


def _describe(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "a table"
    return _DESCRIPTIONS.get(hint, str(hint))


def _plural(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "tables"
    return _PLURALS.get(hint, str(hint))


def documented_keys(
    cls: type, prefix: str = "", slots: Mapping[str, Sequence[Key]] | None = None
) -> list[tuple[str, str, str]]:
    """(key, default, doc) for every key: the configuration reference."""
    rows = []
    for entry in _entries(cls, slots or {}):
        key = join(prefix, entry.name)
        inner = _section_type(entry.hint)
        if inner is not None:
            rows.extend(documented_keys(inner, key, slots))
            continue
        default = "(required)" if entry.default is None else repr(entry.default())
        rows.append((key, default, entry.metadata.get("doc", "")))
    return rows


def _section_type(hint: Any) -> type | None:
    """The dataclass behind a section key (`X`, `X | None`, `list[X]`, `list[X] | None`)."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    return next(filter(None, map(_section_type, typing.get_args(hint))), None)
