"""Store URLs: `sqlite:///path` (one file, one engine) or `postgresql://USER@HOST:PORT/DB`
(a database several engines share; libpq parameters such as `?sslmode=verify-full` go in the
query string). A PostgreSQL URL never carries the password."""

from __future__ import annotations

SQLITE_PREFIX = "sqlite:///"
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> str | None:
    """The file path of a `sqlite:///` URL (3 slashes relative, 4 absolute), else None."""
    if not url.startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        return None
    return url[len(SQLITE_PREFIX) :]


def is_postgresql(url: str) -> bool:
    return url.startswith(POSTGRESQL_SCHEMES)


def url_problem(url: str) -> str | None:
    """What is wrong with a store URL, or None."""
    if is_postgresql(url):
        credentials = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
        if ":" in credentials or "password=" in url:
            return (
                "no password in the URL: keep it in the environment (store_password_env, "
                "or PGPASSWORD)"
            )
        return None
    if sqlite_path(url) is None:
        return (
            "sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://USER@HOST:PORT/DB"
        )
    return None


def display_url(url: str) -> str:
    """How messages name a store: its file, or its URL with any password left out."""
    path = sqlite_path(url)
    if path is not None:
        return path
    scheme, sep, rest = url.partition("://")
    location = rest.partition("?")[0]
    credentials, at, address = location.rpartition("@")
    if sep and at:
        location = f"{credentials.split(':')[0]}@{address}"
    return f"{scheme}{sep}{location}"
