"""The console's users: a TOML file of names, roles and scrypt password hashes.

`ins-engine user add` writes the file (mode 0600, replaced atomically); the engine reads it
again whenever it changes, so a user added or removed counts from the next login without a
restart. Passwords are hashed with scrypt (standard library) at a cost of about 0.15 s per
check on a small server, and never stored or logged.

Roles build on each other: a *viewer* sees the dashboard, the queues and the message list
without patient data; an *operator* may also resend and skip; *vigilance* may also see
patient identities (the work list, the message bytes) and everything the others did.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from engine.errors import ConfigError

SCRYPT_LOG_N = 15  # N = 32768: about 0.15 s and 32 MiB per hash
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LENGTH = 12
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    VIGILANCE = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, name: str) -> Role | None:
        return cls.__members__.get(name.upper())


ROLE_NAMES = tuple(role.label for role in Role)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str = field(repr=False)


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def hash_password(password: str) -> str:
    """`scrypt$<log2 N>$<r>$<p>$<salt>$<key>`, salt and key in base64."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_LOG_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)]
    )


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; False for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    log_n, r, p = (int(part) for part in parts[1:4])
    if not (10 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 4):
        return False
    try:
        salt, expected = base64.b64decode(parts[4]), base64.b64decode(parts[5])
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, log_n, r, p, len(expected)), expected)


@functools.cache
def dummy_hash() -> str:
    """Checked against when a login names no known user, so that the answer takes as long."""
    return hash_password(secrets.token_urlsafe(16))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int, length: int = 32) -> bytes:
    memory = 128 * r * (2**log_n) * 2 + 1024 * 1024
    return hashlib.scrypt(
        password.encode(), salt=salt, n=2**log_n, r=r, p=p, maxmem=memory, dklen=length
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_users(path: Path) -> dict[str, User]:
    """The users of a file (none when it does not exist yet); errors name the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(
            str(path), "-", f"a readable users file ({type(error).__name__})"
        ) from None
    entries = data.get("users", [])
    if not isinstance(entries, list) or set(data) - {"users"}:
        raise ConfigError(str(path), "-", "[[users]] tables only")
    users: dict[str, User] = {}
    for index, entry in enumerate(entries):
        key = f"users[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "password_hash"}:
            raise ConfigError(str(path), key, "name, role and password_hash")
        name, role, password_hash = entry["name"], entry["role"], entry["password_hash"]
        if not isinstance(name, str) or not valid_name(name) or name in users:
            raise ConfigError(str(path), f"{key}.name", "a unique name (letters, digits, . _ @ -)")
        found = Role.named(role) if isinstance(role, str) else None
        if found is None:
            raise ConfigError(str(path), f"{key}.role", f"one of {', '.join(ROLE_NAMES)}")
        if not isinstance(password_hash, str) or not password_hash.startswith("scrypt$"):
            raise ConfigError(
                str(path), f"{key}.password_hash", "a hash from `ins-engine user add`"
            )
        users[name] = User(name, found, password_hash)
    return users


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the file anew (0600, then renamed over the old one)."""
    lines = ["# Console users, written by `ins-engine user add`. Passwords are scrypt hashes.", ""]
    for user in sorted(users.values(), key=lambda user: user.name):
        lines += [
            "[[users]]",
            f'name = "{user.name}"',
            f'role = "{user.role.label}"',
            f'password_hash = "{user.password_hash}"',
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class UsersFile:
    """The users of a file, read again when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def get(self, name: str) -> User | None:
        return self._current().get(name)

    @property
    def empty(self) -> bool:
        """No one can log in (no file configured, none written yet, or no user in it)."""
        try:
            return not self._current()
        except ConfigError:
            return False  # a broken file is reported when someone logs in

    def _current(self) -> dict[str, User]:
        if self.path is None:
            return {}
        try:
            status = self.path.stat()
            stamp = (status.st_mtime_ns, status.st_size)
        except FileNotFoundError:
            return {}
        if stamp != self._stamp:
            self._users = load_users(self.path)
            self._stamp = stamp
        return self._users
