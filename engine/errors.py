"""The engine's own exception tree.

Texts of these exceptions are written by the engine and never carry patient data, so
they may be logged and shown as they are. Anything else raised inside the engine is a bug
or a third-party error whose text is not trusted (the log redaction hides it).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error whose message is safe to log."""


class ConfigError(EngineError):
    """A configuration file is invalid: names the file, the key (or the line, or nothing
    for the file as a whole) and what is expected."""

    def __init__(self, file: str, key: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        super().__init__(f"{file}: {key}: {expected}" if key else f"{file}: {expected}")


class ConfigErrors(ConfigError):
    """Every error found in a configuration, one per line; the fields are the first's, so a
    caller that expects one error still reads a complete one."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.key, first.expected)
        self.errors = errors
        self.args = ("\n".join(str(error) for error in errors),)

    def __str__(self) -> str:
        return str(self.args[0])


class CliError(EngineError):
    """A command-line usage error: says what to fix."""


class StoreError(EngineError):
    """The durable store could not do what was asked (nothing was acknowledged)."""


class LeaseLost(StoreError):
    """A write fenced by a lease this engine no longer holds: another engine has it now."""


class StoreFileFault(StoreError):
    """The engine's store file was deleted, replaced or made read-only under it: writes are
    refused (no AA) and `/readyz` shows this text."""
