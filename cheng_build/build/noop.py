"""The no-op fast path: a cache hit replayed from one record, before anything else is imported.

A cache hit proves that, for this exact command line, working directory and environment, the
build's answer follows from a known set of files: the inputs, the files the package flow read
(lock, registry, config, checkpoint memory, its stamps), the compiler, the action-cache entry,
the artifact and ``cheng.meta.toml`` in place, and every path the import resolver and the
package flow probed (present or absent). The hit remembers that set with each path's stat
signature and what the CLI printed. The next run with the same command line, directory and
environment stats those paths; when every signature is unchanged (and the verified trust has not
expired) nothing the full build would look at has changed, so it prints the same output and
exits 0 without importing the driver, argparse, the stat cache or the action cache. Any
difference, a missing or unreadable record, or any error is a plain miss of this path: the full
build runs and proves it again.

A signature recorded within ``RACY_NS`` of the path's last change is not trusted (the same rule
as the stat cache: a same-size rewrite within one clock tick keeps mtime and ctime), so a record
is only written once every watched path has been quiet that long.

On-disk format (``<cache>/chengc/noop/<blake2b(cwd, argv)>.rec``, one per command line and
directory, replaced atomically; written by chengc for itself, so it is not a public format)::

    b"chengc-noop/2\\n" <header length, 10 ASCII digits> <header> <stdout bytes> <stderr bytes>

The header is UTF-8 (surrogateescape) fields separated by NUL, which no path or argument can
contain: ``cwd, argc, argv..., env digest, valid_until or "", stdout length, stderr length, n,
then n x (path, signature)``; a signature is ``dev,ino,size,mtime_ns,ctime_ns`` or ``-`` for a
path that did not exist. The environment is kept only as a BLAKE2b digest of its sorted
``K=V`` entries: a cache directory is often shared or uploaded, and the environment holds
secrets.

This module imports only ``os`` (and ``time`` when a record expires) on the read side.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

MAGIC = b"chengc-noop/2\n"
RACY_NS = 2_000_000_000  # as cheng_build.build.inputs.RACY_NS (not imported: it pulls hashlib)
_SEP = "\0"
_ENC = ("utf-8", "surrogateescape")


def _cache_root(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """``--pkg-cache`` (any of the three spellings), else ``PKG_CACHE``, else ``chengcache``, as
    the CLI finds it; a mistaken guess only misses (the record names its command line)."""
    value = None
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == "--pkg-cache" and i + 1 < len(argv):
            value = argv[i + 1]
        elif tok.startswith(("--pkg-cache:", "--pkg-cache=")):
            value = tok[len("--pkg-cache:"):]
    value = value or env.get("PKG_CACHE") or "chengcache"
    return os.path.join(cwd, value)


def _blake2b(data: bytes, size: int) -> str:
    try:
        from _blake2 import blake2b  # built in; hashlib would load OpenSSL (~2 ms)
    except ImportError:  # pragma: no cover - an interpreter without it
        from hashlib import blake2b
    return blake2b(data, digest_size=size).hexdigest()


def record_path(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """Where the record of this command line in this directory lives."""
    h = _blake2b(_SEP.join([cwd, *argv]).encode(*_ENC), 16)
    return os.path.join(_cache_root(argv, env, cwd), "chengc", "noop", h + ".rec")


def _sig(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_dev},{st.st_ino},{st.st_size},{st.st_mtime_ns},{st.st_ctime_ns}"


def _env_digest(env: Mapping[str, str]) -> str:
    return _blake2b(_SEP.join(sorted(f"{k}={v}" for k, v in env.items())).encode(*_ENC), 32)


def replay(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> tuple[bytes, bytes] | None:
    """``(stdout, stderr)`` of the remembered hit when nothing it depends on changed, else None.

    Never raises: anything unexpected is a miss of the fast path.
    """
    try:
        with open(record_path(argv, env, cwd), "rb") as fh:
            blob = fh.read()
        if not blob.startswith(MAGIC):
            return None
        at = len(MAGIC)
        hlen = int(blob[at:at + 10])
        at += 10
        f = blob[at:at + hlen].decode(*_ENC).split(_SEP)
        body = blob[at + hlen:]
        if f[0] != cwd:
            return None
        n = int(f[1])
        if f[2:2 + n] != list(argv):
            return None
        i = 2 + n
        if f[i] != _env_digest(env):
            return None
        i += 1
        if f[i]:
            import time

            if time.time() >= float(f[i]):
                return None  # the verified trust expired: the full build verifies again
        out_len, err_len, k = int(f[i + 1]), int(f[i + 2]), int(f[i + 3])
        i += 4
        if len(f) != i + 2 * k or len(body) != out_len + err_len:
            return None
        for j in range(i, i + 2 * k, 2):
            if _sig(f[j]) != f[j + 1]:
                return None
        return body[:out_len], body[out_len:]
    except (OSError, ValueError, UnicodeError, IndexError):
        return None


def remember(argv: Sequence[str], env: Mapping[str, str], cwd: str, watch: Iterable[str],
             valid_until: float | None, stdout: bytes, stderr: bytes) -> bool:
    """Write the record of a cache hit; False (nothing written) when a watched path changed
    within ``RACY_NS`` or the record cannot be written (it is only ever an optimisation)."""
    import time
    from pathlib import Path

    from cheng_build.build.cachefile import write_cache_file

    now = time.time_ns()
    paths = list(dict.fromkeys(os.path.abspath(os.path.join(cwd, p)) for p in watch))
    fields: list[str] = [cwd, str(len(argv)), *argv]
    fields += [_env_digest(env), "" if valid_until is None else repr(float(valid_until)),
               str(len(stdout)), str(len(stderr)), str(len(paths))]
    for p in paths:
        s = _sig(p)
        if s != "-":
            mtime, ctime = (int(x) for x in s.split(",")[3:5])
            if now - max(mtime, ctime) <= RACY_NS:
                return False
        fields += [p, s]
    try:
        if any(_SEP in x for x in fields):
            return False  # no real argv or path holds NUL; never write an ambiguous record
        header = _SEP.join(fields).encode(*_ENC)
        blob = MAGIC + b"%010d" % len(header) + header + stdout + stderr
        write_cache_file(Path(record_path(argv, env, cwd)), blob)
    except (OSError, ValueError, UnicodeError):
        return False
    return True


__all__ = ["RACY_NS", "record_path", "remember", "replay"]
