"""The simple TOML of manifests and locks, read without importing :mod:`tomllib`.

Importing ``tomllib`` costs ~3 ms (its regular expressions, :mod:`datetime`, :mod:`string`),
more than reading a manifest: ``cheng-registry publish`` reads one, and start-up matters there.
Most manifests are a few lines of this subset::

    # comment
    package_id = "pkg://cheng/app"   # trailing comment
    version = "1.0.0"
    epoch = 12
    yanked = false

    [[dependencies]]
    package_id = "pkg://cheng/fs"

    [meta]
    channel = "stable"

that is: full-line and trailing comments; bare keys (``A-Za-z0-9_-``, not dotted); values that
are basic strings without escapes, decimal integers (no ``_``, no leading zeros, at most 18
digits) or booleans; ``[table]`` and ``[[array-of-tables]]`` headers with one bare name. For
such a document :func:`loads` returns exactly what ``tomllib.loads`` returns. For anything else
(escapes, literal or multi-line strings, floats, dates, arrays, inline tables, dotted or quoted
keys, a duplicate key or table, a control character) it returns None and the caller hands the
text to ``tomllib``, which parses it or says what is wrong. The tests hold it to tomllib.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

__all__ = ["loads"]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
# ASCII control characters other than tab, newline and carriage return: TOML allows none of
# them anywhere (a ``\r`` must be part of ``\r\n``; checked per line).
_CONTROL = frozenset(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127]))
_NO_VALUE = object()


def _bare(key: str) -> bool:
    return bool(key) and _BARE.issuperset(key)


def _after(rest: str) -> bool:
    """Whether what follows a value or header is nothing, or only a comment."""
    rest = rest.lstrip(" \t")
    return not rest or rest[0] == "#"


def _value(text: str) -> Any:
    """The value at the start of ``text`` when it is in the subset and only a comment follows;
    :data:`_NO_VALUE` otherwise."""
    if text[:1] == '"':
        end = text.find('"', 1)
        if end < 0 or text.startswith('"""') or "\\" in text[1:end] or not _after(text[end + 1:]):
            return _NO_VALUE
        return text[1:end]
    token = text.split("#", 1)[0].rstrip(" \t")
    if token in ("true", "false"):
        return token == "true" if _after(text[len(token):]) else _NO_VALUE
    digits = token[1:] if token[:1] in "+-" else token
    if not digits or len(digits) > 18 or not _DIGITS.issuperset(digits) or \
            (digits[0] == "0" and len(digits) > 1) or not _after(text[len(token):]):
        return _NO_VALUE
    return int(token)


def loads(text: str) -> dict[str, Any] | None:
    """``tomllib.loads(text)`` when ``text`` is in the subset above; None when it is not."""
    if not _CONTROL.isdisjoint(text) or text.endswith("\r"):  # a \r ends lines only before \n
        return None
    root: dict[str, Any] = {}
    arrays: set[str] = set()  # names of [[array-of-tables]] headers
    current = root
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            return None
        s = line.strip(" \t")
        if not s or s[0] == "#":
            continue
        if s[0] == "[":
            double = s.startswith("[[")
            close = s.find("]]" if double else "]")
            if close < 0 or not _after(s[close + (2 if double else 1):]):
                return None
            name = s[2 if double else 1:close].strip(" \t")
            if not _bare(name):
                return None
            if double:
                if name in root and name not in arrays:
                    return None
                arrays.add(name)
                current = {}
                root.setdefault(name, []).append(current)
            else:
                if name in root:
                    return None
                current = root[name] = {}
            continue
        key, eq, rest = s.partition("=")
        key = key.rstrip(" \t")
        if not eq or not _bare(key) or key in current:
            return None
        value = _value(rest.lstrip(" \t"))
        if value is _NO_VALUE:
            return None
        current[key] = value
    return root
