"""Digests of exactly the inputs of a build, and the Merkle root over them.

A no-op build must not read its sources again, so each file's digest and parsed facts (its
imports, or a manifest's ``package_id``) are kept in a stat cache keyed on the file's
``(dev, inode, size, mtime_ns, ctime_ns)``. As in git's index, an entry recorded within
``RACY_NS`` of the file's last change is "racily clean" (a same-size rewrite in the same clock
tick would keep the signature), so it is re-read and re-hashed until it is old enough.

On-disk format of the stat cache (``<cache>/chengc/stat.json``, written atomically, rewritten
only when something changed; a missing or unreadable file is an empty cache)::

    {"version": 1,
     "files": {"<absolute path>": {"sig": [dev, ino, size, mtime_ns, ctime_ns],
                                   "at": <ns when recorded>, "sha256": "<hex>",
                                   "facts": <json: import list, or package_id>}},
     "roots": {"<listing digest>": "<input root CID>"}}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cheng_build.build.cachefile import write_cache_file
from cheng_build.build.imports import GraphFile, ImportStmt, parse_imports
from cheng_build.core.sha256 import sha256

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

RACY_NS = 2_000_000_000
MAX_ROOTS = 4096
_VERSION = 1


def _sig(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _manifest_package_id(data: bytes) -> str | None:
    import tomllib  # only when a manifest is new or changed: keeps the no-op path light

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # the compiler would not match it either; resolution falls through
    pid = doc.get("package_id")
    return pid if isinstance(pid, str) else None


class StatCache:
    """File digests and facts, trusted while the file's stat signature is unchanged.

    Implements :class:`cheng_build.build.imports.FactSource`.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._files: dict[str, dict[str, Any]] = {}
        self._roots: dict[str, str] = {}
        self._dirty = False
        self.reads = 0  # how many files had to be read (tests and --explain use it)
        # Every path this build looked at (present or not), in order: a cache hit remembers
        # their signatures for the no-op fast path (cheng_build.build.noop).
        self.watched: dict[str, None] = {}
        if path is not None:
            try:
                doc = json.loads(path.read_bytes())
                if doc.get("version") == _VERSION and isinstance(doc.get("files"), dict):
                    self._files = doc["files"]
                    self._roots = doc.get("roots") if isinstance(doc.get("roots"), dict) else {}
            except (OSError, ValueError):
                pass

    def _lookup(self, path: Path, analyze: Callable[[bytes], Any]) -> tuple[int, str, Any]:
        key = os.fspath(path)
        self.watched[key] = None
        st = os.stat(path)
        sig = _sig(st)
        rec = self._files.get(key)
        if rec is not None and rec.get("sig") == sig and rec.get("at", 0) - max(sig[3], sig[4]) > RACY_NS:
            return sig[2], rec["sha256"], rec["facts"]
        data = path.read_bytes()
        self.reads += 1
        # The file may change between stat and read: record the stat taken after the read only
        # when it still matches, so a torn observation is never trusted.
        sig_after = _sig(os.stat(path))
        digest = sha256(data).hexdigest()
        facts = analyze(data)
        if sig_after == sig and len(data) == sig[2]:
            self._files[key] = {"sig": sig, "at": time.time_ns(), "sha256": digest, "facts": facts}
            self._dirty = True
        return len(data), digest, facts

    def module_facts(self, path: Path) -> tuple[int, str, tuple[ImportStmt, ...]]:
        """``(size, sha256 hex, imports)`` of a Cheng source file."""

        def analyze(data: bytes) -> list[list[Any]]:
            text = data.decode("utf-8", errors="replace")
            return [[s.line, s.path] for s in parse_imports(text)]

        size, digest, facts = self._lookup(path, analyze)
        return size, digest, tuple(ImportStmt(int(a), str(b)) for a, b in facts)

    def manifest_facts(self, path: Path) -> tuple[int, str, str | None]:
        """``(size, sha256 hex, package_id or None)`` of a ``cheng-package.toml``."""
        size, digest, facts = self._lookup(path, _manifest_package_id)
        return size, digest, facts

    def file_digest(self, path: Path) -> tuple[int, str]:
        """``(size, sha256 hex)`` of any file (the compiler binary, a lock, the registry)."""
        size, digest, _ = self._lookup(path, lambda _d: None)
        return size, digest

    def watch(self, *paths: str | os.PathLike[str]) -> None:
        """Note paths the build's answer depends on besides those looked up here: probes of
        files that may be absent, stamps, directories listed (their mtime covers the listing)."""
        for p in paths:
            self.watched[os.fspath(p)] = None

    def known_root(self, listing: str) -> str | None:
        """The input root CID computed earlier for this listing digest, if any."""
        cid = self._roots.get(listing)
        return cid if isinstance(cid, str) else None

    def remember_root(self, listing: str, cid: str) -> None:
        """Remember the input root CID of a listing (a pure function: never invalidated)."""
        if self._roots.get(listing) != cid:
            if len(self._roots) >= MAX_ROOTS:
                self._roots.clear()  # bounded: a cheap recompute beats an unbounded file
            self._roots[listing] = cid
            self._dirty = True

    def save(self) -> None:
        """Persist the cache if anything changed (a no-op build writes nothing)."""
        if self.path is None or not self._dirty:
            return
        doc = {"version": _VERSION, "files": self._files, "roots": self._roots}
        write_cache_file(self.path, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
        self._dirty = False


def read_inputs(files: Sequence[GraphFile]) -> dict[str, bytes]:
    """Read every input and check it still has the digest the cache key was built from.

    Raises:
        InputChangedError: a file changed since it was hashed (edit during the build).
    """
    from cheng_build.build.errors import InputChangedError

    out: dict[str, bytes] = {}
    for f in files:
        data = f.source.read_bytes()
        if sha256(data).hexdigest() != f.sha256:
            raise InputChangedError(
                f"input changed during the build: {f.source}",
                how="run chengc again once the editor has finished writing",
            )
        out[f.staged] = data
    return out


def listing_digest(files: Sequence[GraphFile]) -> str:
    """A digest of the input listing: names, sizes and digests, sorted by staged path.

    It names the same tree as the input root CID but costs no CAS work, so the stat cache maps
    it to the CID once computed (:meth:`StatCache.known_root`) and a no-op build never imports
    the CAS. The SHA-256 of the lines ``<staged path>\\0<size>\\0<sha256 hex>\\n``.
    """
    text = "".join(f"{f.staged}\0{f.size}\0{f.sha256}\n" for f in sorted(files, key=lambda f: f.staged))
    return sha256(text.encode()).hexdigest()


__all__ = ["RACY_NS", "StatCache", "listing_digest", "read_inputs"]
