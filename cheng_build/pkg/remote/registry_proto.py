"""The registry protocol: a registry file answers ``head``, ``lines`` and ``proof``.

Over libp2p, protocol ``/cheng/registry/1.0.0``, one request per stream:

    request:  uvarint(len) || JSON {"op": "head"}
                                   {"op": "lines", "after": N, "limit": K}
                                   {"op": "proof", "old": M, "new": N}
    response: uvarint(len) || JSON header   then   uvarint(len) || body

The header is ``{"ok": true, ...}`` (``head``: ``size``, ``checkpoint_at``, ``checkpoint`` (the
newest checkpoint line as text, or null); ``lines``: ``count``; ``proof``: ``hashes``, hex) or
``{"ok": false, "error": "..."}``. The body is the raw lines ``N+1..N+count`` each ended by
``\\n`` (``lines``), else empty: the lines travel as the bytes that are hashed and signed, never
re-encoded.

Over HTTP (the gateway of ``cheng-pkg serve``), the same three as plain GETs:
``/registry/v1/head`` (JSON), ``/registry/v1/lines?after=N&limit=K`` (``application/x-ndjson``,
the body above; ``X-Registry-Count``), ``/registry/v1/proof?old=M&new=N`` (JSON). Lines and
proofs name fixed positions of an append-only log, so they are cacheable; the head is not.

A server answers from the file as it is on disk (a mirror's file was verified when it synced;
clients verify everything anyway). The parsed lines and their Merkle leaves are kept while the
file's size and mtime stay the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheng_build.cas import varint

PROTOCOL_ID = "/cheng/registry/1.0.0"
MAX_REQUEST_BYTES = 4096
MAX_PAGE_LINES = 4096
MAX_PAGE_BYTES = 4 * 1024 * 1024
# A response frame may carry a full page plus one line that started below the byte cap.
MAX_RESPONSE_BYTES = MAX_PAGE_BYTES + 1024 * 1024


class ProtocolError(ValueError):
    """A request or response that does not follow the protocol."""


def frame(body: bytes) -> bytes:
    """``uvarint(len(body)) || body``."""
    return varint.encode(len(body)) + body


def _int(req: dict[str, Any], key: str) -> int:
    v = req.get(key)
    if type(v) is not int or v < 0:
        raise ProtocolError(f"'{key}' must be a non-negative integer")
    return v


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stamp: tuple[int, int]
    lines: list[bytes]
    offsets: list[int]  # byte offset of each line in the file (for bodies without copies)
    data: bytes
    checkpoint_at: int


class RegistryView:
    """Answers protocol requests from one registry file (thread-safe)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None
        self._leaves: list[bytes] | None = None

    def _load(self) -> _Snapshot:
        try:
            st = self.path.stat()
            stamp = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            snap = self._snap
            if snap is not None and snap.stamp == stamp:
                return snap
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            # Serve whole lines only: a torn tail (a publisher mid-append) is not served.
            data = data[:data.rfind(b"\n") + 1]
            lines = data.split(b"\n")[:-1] if data else []
            offsets, pos = [], 0
            for ln in lines:
                offsets.append(pos)
                pos += len(ln) + 1
            cp_at = 0
            for i in range(len(lines) - 1, -1, -1):
                if b'"checkpoint"' in lines[i]:
                    try:
                        if json.loads(lines[i]).get("type") == "checkpoint":
                            cp_at = i + 1
                            break
                    except (ValueError, AttributeError):
                        continue
            snap = _Snapshot(stamp, lines, offsets, data, cp_at)
            self._snap, self._leaves = snap, None
            return snap

    def _leaf_hashes(self, snap: _Snapshot) -> list[bytes]:
        with self._lock:
            if self._leaves is None or self._snap is not snap:
                sha = hashlib.sha256
                self._leaves = [sha(b"\x00" + ln).digest() for ln in snap.lines]
            return self._leaves

    def answer(self, req: object) -> tuple[dict[str, Any], bytes]:
        """The header and body answering ``req`` (a decoded JSON request).

        Raises:
            ProtocolError: the request is malformed or asks for what the log does not hold.
        """
        if not isinstance(req, dict):
            raise ProtocolError("a request is a JSON object")
        op = req.get("op")
        snap = self._load()
        size = len(snap.lines)
        if op == "head":
            cp = snap.lines[snap.checkpoint_at - 1].decode("utf-8") if snap.checkpoint_at else None
            return {"ok": True, "size": size, "checkpoint_at": snap.checkpoint_at,
                    "checkpoint": cp}, b""
        if op == "lines":
            after, limit = _int(req, "after"), _int(req, "limit")
            if after > size:
                raise ProtocolError(f"the log has only {size} lines")
            end = min(size, after + min(limit, MAX_PAGE_LINES))
            if end <= after:
                return {"ok": True, "count": 0}, b""
            start_b = snap.offsets[after]
            stop = after + 1
            # At least one line; then as many as fit the byte cap.
            while stop < end and snap.offsets[stop] + len(snap.lines[stop]) + 1 - start_b <= MAX_PAGE_BYTES:
                stop += 1
            end_b = snap.offsets[stop - 1] + len(snap.lines[stop - 1]) + 1
            return {"ok": True, "count": stop - after}, snap.data[start_b:end_b]
        if op == "proof":
            from cheng_build.trust.consistency import consistency_proof

            old, new = _int(req, "old"), _int(req, "new")
            if not old <= new <= size:
                raise ProtocolError(f"no proof from {old} to {new} lines in a log of {size}")
            hashes = consistency_proof(self._leaf_hashes(snap)[:new], old)
            return {"ok": True, "hashes": [h.hex() for h in hashes]}, b""
        raise ProtocolError(f"unknown op {op!r}")


def parse_head(h: dict[str, Any]) -> tuple[int, int, bytes | None]:
    """(size, checkpoint_at, checkpoint line bytes) from a head header.

    Raises:
        ProtocolError: the header is malformed.
    """
    size, at, cp = h.get("size"), h.get("checkpoint_at"), h.get("checkpoint")
    if type(size) is not int or type(at) is not int or not (cp is None or isinstance(cp, str)):
        raise ProtocolError("malformed head")
    return size, at, None if cp is None else cp.encode("utf-8")


def parse_proof(h: dict[str, Any]) -> list[bytes]:
    """The proof hashes of a proof header.

    Raises:
        ProtocolError: malformed.
    """
    hs = h.get("hashes")
    if not isinstance(hs, list) or len(hs) > 128:
        raise ProtocolError("malformed proof")
    try:
        return [bytes.fromhex(x) for x in hs]
    except (TypeError, ValueError):
        raise ProtocolError("malformed proof hash") from None


def split_body(body: bytes, count: int) -> list[bytes]:
    """The ``count`` lines of a ``lines`` body.

    Raises:
        ProtocolError: the body does not hold exactly ``count`` newline-ended lines.
    """
    if count == 0:
        if body:
            raise ProtocolError("lines body for zero lines")
        return []
    if not body.endswith(b"\n"):
        raise ProtocolError("lines body does not end with a newline")
    lines = body[:-1].split(b"\n")
    if len(lines) != count:
        raise ProtocolError(f"lines body holds {len(lines)} lines, header says {count}")
    return lines


async def handle_stream(view: RegistryView, stream: Any) -> None:
    """Serve one ``/cheng/registry/1.0.0`` request on ``stream`` (a libp2p stream)."""
    import trio

    from cheng_build.pkg.fetch import libp2p_adapter as lp

    # A request that breaks off or is malformed ends the stream; the peer learns nothing more.
    errors: tuple[type[BaseException], ...] = (ValueError, *lp.STREAM_ERRORS)
    try:
        with trio.move_on_after(30):
            reader = lp.FrameReader(stream, MAX_REQUEST_BYTES)
            raw = await reader.next()
            if raw is None:
                return
            try:
                header, body = await trio.to_thread.run_sync(view.answer, json.loads(raw))
            except (ProtocolError, ValueError, UnicodeDecodeError) as exc:
                header, body = {"ok": False, "error": str(exc)[:200]}, b""
            await stream.write(frame(json.dumps(header).encode()) + frame(body))
    except errors:
        pass
    finally:
        try:
            await stream.close()
        except Exception:
            pass


def http_answer(view: RegistryView, path: str, query: dict[str, list[str]]
                ) -> tuple[int, str, dict[str, str], bytes] | None:
    """(status, content type, headers, body) for a ``/registry/v1/...`` GET, or None when the
    path is not ours."""
    if not path.startswith("/registry/v1/"):
        return None
    op = path.removeprefix("/registry/v1/")
    req: dict[str, Any] = {"op": op}
    try:
        for k in ("after", "limit", "old", "new"):
            if k in query:
                req[k] = int(query[k][0])
        if op == "lines":
            req.setdefault("limit", MAX_PAGE_LINES)
        header, body = view.answer(req)
    except (ProtocolError, ValueError) as exc:
        code = 404 if "unknown op" in str(exc) else 400
        return code, "text/plain; charset=utf-8", {}, (str(exc) + "\n").encode()
    if op == "lines":
        return 200, "application/x-ndjson", {"X-Registry-Count": str(header["count"]),
                                             "Cache-Control": "public, max-age=60"}, body
    cache = "no-cache" if op == "head" else "public, max-age=86400"
    return 200, "application/json", {"Cache-Control": cache}, json.dumps(header).encode()


__all__ = ["MAX_PAGE_LINES", "MAX_RESPONSE_BYTES", "PROTOCOL_ID", "ProtocolError", "RegistryView",
           "frame", "handle_stream", "http_answer", "parse_head", "parse_proof", "split_body"]
