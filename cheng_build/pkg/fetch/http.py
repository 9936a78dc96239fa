"""HTTP fallback: fetch a DAG from an IPFS trustless gateway, verifying every block.

A gateway is untrusted like any peer: each block must hash to its CID and belong to the DAG
being fetched (it must be linked from a block we already accepted), else the gateway is refused
with a ``DigestMismatchError`` naming it and the block. With nothing of the DAG cached we ask for
the whole DAG as one CAR stream (``?format=car``, depth-first, so parents come before children);
when part of it is cached (a resumed fetch) we ask only for the missing blocks
(``?format=raw``), one keep-alive connection, so a block already stored is never fetched again.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from multiformats import CID

from cheng_build.core.errors import DigestMismatchError, NotFoundError, TransportError, UsageError
from cheng_build.pkg.fetch import carstream
from cheng_build.pkg.fetch.blocks import (
    CODEC_RAW,
    BlockStore,
    child_cids,
    cid_text,
    codec_of,
    matches,
    to_cid,
)

TIMEOUT_S = 30.0
BATCH_BYTES = 8 * 1024 * 1024


@dataclass
class HttpStats:
    blocks_fetched: int = 0
    bytes_fetched: int = 0
    blocks_local: int = 0


def gateway_url(text: str) -> str:
    """Normalise ``http://host:port`` or the multiaddr ``/ip4/<ip>/tcp/<port>/http``.

    Raises:
        UsageError: neither form.
    """
    if text.startswith(("http://", "https://")):
        return text.rstrip("/")
    parts = text.strip("/").split("/")
    if len(parts) == 5 and parts[0] in ("ip4", "ip6", "dns4", "dns6", "dns") and parts[2] == "tcp" \
            and parts[4] in ("http", "https"):
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        return f"{parts[4]}://{host}:{parts[3]}"
    raise UsageError(f"bad gateway address '{text}'",
                     how="write it as http://<host>:<port> or /ip4/<ip>/tcp/<port>/http")


def is_gateway(text: str) -> bool:
    return text.startswith(("http://", "https://")) or text.rstrip("/").endswith(("/http", "/https"))


class _Client:
    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT_S)

    def get(self, cid_bytes: bytes, fmt: str) -> http.client.HTTPResponse:
        cid = cid_text(cid_bytes)
        accept = "application/vnd.ipld.car" if fmt == "car" else "application/vnd.ipld.raw"
        try:
            self.conn.request("GET", f"/ipfs/{cid}?format={fmt}", headers={"Accept": accept})
            resp = self.conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"gateway {self.url} unreachable", why=str(exc)) from exc
        if resp.status == 404:
            resp.read()
            raise NotFoundError(f"gateway {self.url} does not have {cid}")
        if resp.status != 200:
            resp.read()
            raise TransportError(f"gateway {self.url} answered {resp.status} {resp.reason} for {cid}")
        return resp

    def close(self) -> None:
        self.conn.close()


def _refuse(url: str, cid_bytes: bytes, what: str) -> DigestMismatchError:
    return DigestMismatchError(f"gateway {url} sent a bad block {cid_text(cid_bytes)}", why=what,
                               how="the gateway is corrupt or hostile; remove it from the peers")


def fetch_dag(store: BlockStore, root: bytes, gateway: str, *,
              on_block: Callable[[int], None] | None = None) -> HttpStats:
    """Fetch every missing block of the DAG under ``root`` from ``gateway``.

    Raises:
        DigestMismatchError: the gateway sent bytes that do not hash to their CID, or a block that
            is not part of the DAG.
        NotFoundError: the gateway lacks a block.
        TransportError: the gateway cannot be reached or broke off.
    """
    url = gateway_url(gateway)
    stats = HttpStats()
    client = _Client(url)
    writer = _Writer(store, stats, on_block)
    try:
        if not store.has(to_cid(root)):
            try:
                _fetch_car(client, store, root, stats, writer)
            finally:
                writer.flush()  # whatever arrived verified is kept: a later fetch resumes
        _fill_missing(client, store, root, stats, writer)
    finally:
        writer.close()
        client.close()
    return stats


class _Writer:
    """Verified blocks go to the store in batches (one durable commit per ~8 MiB, not per block),
    each committed on a worker thread while the next batch is read from the network."""

    def __init__(self, store: BlockStore, stats: HttpStats, on_block: Callable[[int], None] | None):
        self.store, self.stats, self.on_block = store, stats, on_block
        self.items: list[tuple[CID, bytes]] = []
        self.size = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-store")
        self._pending: Future[None] | None = None

    def add(self, c: bytes, data: bytes) -> None:
        self.items.append((to_cid(c), data))
        self.size += len(data)
        self.stats.blocks_fetched += 1
        self.stats.bytes_fetched += len(data)
        if self.on_block is not None:
            self.on_block(len(data))
        if self.size >= BATCH_BYTES:
            self.flush(wait=False)

    def _commit(self, items: list[tuple[CID, bytes]]) -> None:
        put_many = getattr(self.store, "put_many", None)
        if put_many is not None:
            put_many(items)
        else:
            for cid, data in items:
                self.store.put(cid, data)

    def flush(self, *, wait: bool = True) -> None:
        """Commit what is buffered; with ``wait``, return only once everything is stored."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # one batch at a time; re-raises a store error here
        items, self.items, self.size = self.items, [], 0
        if items:
            self._pending = self._pool.submit(self._commit, items)
        if wait and self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)



def _fetch_car(client: _Client, store: BlockStore, root: bytes, stats: HttpStats,
               writer: _Writer) -> None:
    resp = client.get(root, "car")
    expected = {root}
    try:
        for c, data in carstream.read_sections(io.BufferedReader(resp, 1 << 20)):  # type: ignore[arg-type]
            if c not in expected:
                raise _refuse(client.url, c, "it is not linked from the DAG being fetched")
            if not matches(c, data):
                raise _refuse(client.url, c, "its bytes do not hash to its CID")
            expected.discard(c)
            expected.update(child_cids(c, data))
            if not store.has(to_cid(c)):
                writer.add(c, data)
            else:
                stats.blocks_local += 1
    except carstream.CarStreamError as exc:
        # Whatever arrived verified is stored; _fill_missing asks for the rest block by block.
        client.close()
        client.conn = _Client(client.url).conn
        if not writer.items and not store.has(to_cid(root)):
            raise TransportError(f"gateway {client.url} sent a broken CAR", why=str(exc)) from exc
    except (OSError, http.client.HTTPException) as exc:
        client.close()
        client.conn = _Client(client.url).conn
        if not writer.items and not store.has(to_cid(root)):
            raise TransportError(f"gateway {client.url} broke off", why=str(exc)) from exc


def _fill_missing(client: _Client, store: BlockStore, root: bytes, stats: HttpStats,
                  writer: _Writer) -> None:
    stack = [root]
    seen: set[bytes] = set()
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        cid = to_cid(c)
        if store.has(cid):
            if codec_of(c) == CODEC_RAW:
                continue
            data = store.get(cid)
        else:
            resp = client.get(c, "raw")
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(f"gateway {client.url} broke off", why=str(exc)) from exc
            if not matches(c, data):
                raise _refuse(client.url, c, "its bytes do not hash to its CID")
            writer.add(c, data)
        stack.extend(child_cids(c, data))


__all__ = ["HttpStats", "fetch_dag", "gateway_url", "is_gateway"]
