"""The action cache: a compile's output, keyed on everything that can change it.

Key = SHA-256 of the canonical JSON of :class:`KeyParts`: the compiler binary's digest, the flags
handed to it, the input root, the allow-listed environment values and the target. The parts
(and every input's digest) are stored with each entry, so ``--explain`` can say exactly which
input or flag differs from the last build of the same output, instead of an opaque "miss".

On-disk format, under ``<cache>/chengc/`` (every file written atomically; JSON, sorted keys)::

    ac/<key[:2]>/<key>.json   {"version": 1, "key": ..., "parts": {...}, "inputs": {staged:
                               [source, sha256]}, "output": {"ref": <artifact ref>, "sha256":
                               ..., "size": n, "mode": 0o755}, "stdout": b64, "stderr": b64}
    targets/<sha256(output path)>.json   the last entry written for that output path (same shape)

Artifact bytes live in an :class:`ArtifactStore` named by ``ref``: the content store
(:class:`CasArtifactStore`, ref = the artifact's CID); :class:`FileArtifactStore` (ref =
``sha256:<hex>``) is the small stand-alone alternative the tests use to corrupt an artifact.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cheng_build.build.cachefile import write_cache_file
from cheng_build.core.record import dataclass, field
from cheng_build.core.sha256 import sha256

TYPE_CHECKING = False  # typing costs chengc start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # a structural interface only mypy checks; nothing tests it with isinstance

_VERSION = 1


@dataclass(frozen=True, slots=True)
class KeyParts:
    """Everything the compiler's output may depend on, by value."""

    compiler_digest: str
    flags: tuple[str, ...]
    input_root: str
    env: tuple[tuple[str, str], ...]
    target: str

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict (lists for tuples)."""
        return {"compiler_digest": self.compiler_digest, "flags": list(self.flags),
                "input_root": self.input_root, "env": [list(kv) for kv in self.env],
                "target": self.target}

    @property
    def key(self) -> str:
        """The cache key: SHA-256 hex of the canonical JSON of the parts."""
        blob = json.dumps({"v": _VERSION, **self.as_json()}, sort_keys=True, separators=(",", ":"))
        return sha256(blob.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached compile: its key parts, input digests, output reference and compiler output."""

    parts: KeyParts
    inputs: Mapping[str, tuple[str, str]]  # staged path -> (source path, sha256 hex)
    ref: str
    sha256: str
    size: int
    mode: int
    stdout: bytes = b""
    stderr: bytes = b""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {"version": _VERSION, "key": self.parts.key, "parts": self.parts.as_json(),
               "inputs": {k: list(v) for k, v in sorted(self.inputs.items())},
               "output": {"ref": self.ref, "sha256": self.sha256, "size": self.size, "mode": self.mode},
               "stdout": base64.b64encode(self.stdout).decode(),
               "stderr": base64.b64encode(self.stderr).decode(), "extra": dict(self.extra)}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_json(data: bytes) -> Entry:
        """Parse an entry; raises ValueError/KeyError/TypeError on anything malformed."""
        doc = json.loads(data)
        if doc.get("version") != _VERSION:
            raise ValueError("entry version")
        p = doc["parts"]
        parts = KeyParts(str(p["compiler_digest"]), tuple(p["flags"]), str(p["input_root"]),
                         tuple((str(a), str(b)) for a, b in p["env"]), str(p["target"]))
        out = doc["output"]
        return Entry(parts, {k: (str(v[0]), str(v[1])) for k, v in doc["inputs"].items()},
                     str(out["ref"]), str(out["sha256"]), int(out["size"]), int(out["mode"]),
                     base64.b64decode(doc.get("stdout", "")), base64.b64decode(doc.get("stderr", "")),
                     dict(doc.get("extra", {})))


class ArtifactStore(Protocol):
    """Where artifact bytes live, named by a reference string."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its reference."""
        ...

    def get(self, ref: str) -> bytes:
        """The bytes ``ref`` names, verified; raises ``NotFoundError``/``DigestMismatchError``."""
        ...


class ActionCache:
    """Entries under ``root`` (``<cache>/chengc``); artifacts in ``store``."""

    def __init__(self, root: Path, store: ArtifactStore) -> None:
        self.root = root
        self.store = store

    def _entry_path(self, key: str) -> Path:
        return self.root / "ac" / key[:2] / f"{key}.json"

    def _target_path(self, output: Path) -> Path:
        return self.root / "targets" / (sha256(os.fspath(output).encode()).hexdigest() + ".json")

    def files_for(self, key: str, output: Path) -> tuple[Path, Path]:
        """The entry file of ``key`` and the last-build file of ``output`` (what a hit reads)."""
        return self._entry_path(key), self._target_path(output)

    def lookup(self, parts: KeyParts) -> Entry | None:
        """The entry for these parts, or None (a corrupt entry counts as absent)."""
        try:
            entry = Entry.from_json(self._entry_path(parts.key).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry if entry.parts == parts else None

    def last_for(self, output: Path) -> Entry | None:
        """The last entry recorded for ``output`` (what ``--explain`` compares against)."""
        try:
            return Entry.from_json(self._target_path(output).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def record(self, entry: Entry, output: Path) -> None:
        """Store ``entry`` under its key and as the last build of ``output``."""
        blob = entry.to_json()
        write_cache_file(self._entry_path(entry.parts.key), blob)
        self.note_target(entry, output, blob)

    def note_target(self, entry: Entry, output: Path, blob: bytes | None = None) -> None:
        """Remember ``entry`` as the last build of ``output`` (skipped when already so)."""
        blob = blob or entry.to_json()
        tp = self._target_path(output)
        try:
            if tp.read_bytes() == blob:
                return
        except OSError:
            pass
        write_cache_file(tp, blob)


def explain(parts: KeyParts, inputs: Mapping[str, tuple[str, str]], previous: Entry | None) -> list[str]:
    """Why ``parts`` missed, compared with the previous build of the same output.

    Returns lines such as ``input changed: pkgroots/0/cheng-util/src/strings.cheng (...)`` or
    ``flag added: --release``; the first line says there was no previous build when that is so.
    """
    if previous is None:
        return ["no previous build of this output is recorded"]
    old = previous.parts
    out: list[str] = []
    if old.compiler_digest != parts.compiler_digest:
        out.append(f"compiler changed: digest {old.compiler_digest[:16]} -> {parts.compiler_digest[:16]}")
    if old.target != parts.target:
        out.append(f"target changed: {old.target} -> {parts.target}")
    if old.flags != parts.flags:
        was, now = list(old.flags), list(parts.flags)
        out += [f"flag removed: {f}" for f in was if f not in now]
        out += [f"flag added: {f}" for f in now if f not in was]
        if sorted(was) == sorted(now):
            out.append(f"flag order changed: {' '.join(was)} -> {' '.join(now)}")
    if old.env != parts.env:
        was_env, now_env = dict(old.env), dict(parts.env)
        for k in sorted(set(was_env) | set(now_env)):
            if was_env.get(k) != now_env.get(k):
                out.append(f"env changed: {k}={was_env.get(k, '<unset>')!r} -> {now_env.get(k, '<unset>')!r}")
    if old.input_root != parts.input_root:
        prev_in = previous.inputs
        for staged in sorted(set(prev_in) | set(inputs)):
            a, b = prev_in.get(staged), inputs.get(staged)
            if a is None and b is not None:
                out.append(f"input added: {b[0]} (as {staged})")
            elif b is None and a is not None:
                out.append(f"input removed: {a[0]} (was {staged})")
            elif a is not None and b is not None and a[1] != b[1]:
                out.append(f"input changed: {b[0]} (sha256 {a[1][:12]} -> {b[1][:12]})")
        if len(out) == 0:
            out.append(f"input root changed: {old.input_root} -> {parts.input_root}")
    if not out:
        out.append("the previous build's entry is no longer in the cache")
    return out


class CasArtifactStore:
    """Artifacts as UnixFS files in the content store (``<cache>/blocks/``), named by CID.

    ``put`` imports the bytes (blocks verified and written durably in one batch); ``get``
    reassembles them, every block verified. Artifacts are not pinned: ``cheng-pkg gc`` may
    collect them, and a hit whose artifact is gone rebuilds (a cache may forget).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> str:
        from cheng_build.build.fastcid import CHUNK

        if len(data) <= CHUNK:
            return put_raw_block(self.root, data)
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.cas.importer import add_bytes

        return str(add_bytes(Blockstore(self.root), data))

    def get(self, ref: str) -> bytes:
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.cas.cid import parse_cid
        from cheng_build.cas.exporter import read_file

        return read_file(Blockstore(self.root), parse_cid(ref))


def put_raw_block(root: Path, data: bytes) -> str:
    """Store a one-chunk artifact as the raw block the CAS importer would make; returns its CID.

    Why not :class:`cheng_build.cas.blockstore.Blockstore`: importing it (and ``multiformats``)
    costs ~60-90 ms of CPU, more than half the wrapper's budget on a cache miss, for what is one
    file write. This follows the blockstore's documented on-disk format (version 1) exactly:
    ``<root>/blocks/<next-to-last two characters>/<cid>``, written as a ``.tmp-*`` file in the
    shard, fsynced, renamed into place, the shard directory fsynced, all under a shared flock of
    ``<root>/store.lock`` so ``gc`` (exclusive) never sees a half-made write. An existing block
    with other bytes (a corrupt one) is replaced, as ``Blockstore.put`` does.
    ``tests/test_ux_speed.py`` checks the CID and the block against the CAS.
    """
    import fcntl

    from cheng_build.build.fastcid import raw_cid

    cid = raw_cid(sha256(data).hexdigest())
    shard = root / "blocks" / cid[-3:-1]
    final = shard / cid
    try:
        if final.stat().st_size == len(data) and final.read_bytes() == data:
            return cid
    except OSError:
        pass
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(root / "store.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        from cheng_build.core.errors import StoreError

        raise StoreError(f"cannot open the store at {root}", why=str(exc),
                         how="check the path and its permissions (--pkg-cache: / PKG_CACHE)") from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        new_shard = not shard.is_dir()
        shard.mkdir(parents=True, exist_ok=True)
        tmp = shard / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        for d in (shard, shard.parent) if new_shard else (shard,):
            dfd = os.open(d, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
    return cid


class FileArtifactStore:
    """Artifacts as files named by their SHA-256 (``<root>/objects/<hex>``), verified on read."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes) -> str:
        digest = sha256(data).hexdigest()
        p = self.root / "objects" / digest
        if not p.exists():
            write_cache_file(p, data)
        return f"sha256:{digest}"

    def get(self, ref: str) -> bytes:
        from cheng_build.core.errors import DigestMismatchError, NotFoundError

        digest = ref.removeprefix("sha256:")
        try:
            data = (self.root / "objects" / digest).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact {ref} is not in the cache") from exc
        if sha256(data).hexdigest() != digest:
            raise DigestMismatchError(f"cached artifact {ref} is corrupt",
                                      how="delete it; the next build recompiles")
        return data


def canonical_env(env: Mapping[str, str], exclude: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """The env part of the key: sorted pairs, minus per-run paths (HOME, TMPDIR)."""
    return tuple((k, env[k]) for k in sorted(env) if k not in exclude)


__all__ = ["ActionCache", "ArtifactStore", "CasArtifactStore", "Entry", "FileArtifactStore", "KeyParts",
           "canonical_env",
           "explain"]
