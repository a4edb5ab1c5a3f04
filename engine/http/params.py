"""What a request names, read in one place for every page and API route: a row id in the
path, a page's cursor, where to go next, a text typed into a form.

Anyone can type a URL or post a form: a value that cannot name a row is not found (a
number past 64 bits would overflow the store's integer and fail as a 500), and a redirect
target is normalised and kept to the engine's own paths (a browser reads `\\` as `/`, and
`/.//host` or `/%2F/host` become `//host`, another site). A target holding a control
character is refused with 400 rather than written into a `Location` header, and so is a
text holding one but tab and line breaks (PostgreSQL cannot store NUL).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from aiohttp import web

from engine.store.base import row_id

MAX_TARGET = 1024  # the console's longest target (a filtered list) is well under this
_PATH_SAFE = "/!$&'()*+,;=:@~"
_QUERY_SAFE = _PATH_SAFE + "?%"  # the query keeps its own escapes (`a%26b` stays one value)


def text_field(value: object, limit: int) -> str:
    """A filter, a reason, a comment or a user name as typed: trimmed and cut at `limit`
    characters ('' when absent or a file)."""
    text = value.strip()[:limit] if isinstance(value, str) else ""
    if any(_control(char) and char not in "\t\r\n" for char in text):
        raise web.HTTPBadRequest(text="a text field cannot hold control characters")
    return text


def _control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F


def path_id(request: web.Request, name: str) -> int:
    """The row id in the path's `{name}`: 404 unless it is digits from 1 to the store's
    largest id."""
    number = row_id(request.match_info[name])
    if number is None:
        raise web.HTTPNotFound(text="no such row")
    return number


def cursor(request: web.Request) -> int | None:
    """A page's `before` cursor; anything but a row id lists from the newest."""
    return row_id(request.query.get("before", ""))


def local_target(text: str | None, default: str) -> str:
    """Where to send the browser: `text` as a path of this engine with its query, or
    `default` when it is empty, too long or could lead elsewhere."""
    if not text:
        return default
    if any(_control(char) for char in text):
        raise web.HTTPBadRequest(text="a redirect target cannot hold control characters")
    raw_path, separator, query = text.partition("#")[0].partition("?")
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return default
    path = remove_dot_segments(path)
    if len(text) > MAX_TARGET or not path.startswith("/") or path.startswith("//"):
        return default
    if "\\" in path or "\\" in query:
        return default
    return quote(path, safe=_PATH_SAFE) + separator + quote(query, safe=_QUERY_SAFE)


def remove_dot_segments(path: str) -> str:
    """RFC 3986's `.` and `..` removal, keeping empty segments (`/.//x` is `//x`, not the
    `/x` `posixpath.normpath` would make of it)."""
    kept: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                kept.append("")
        elif segment == "..":
            if len(kept) > 1:
                kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/".join(kept)
