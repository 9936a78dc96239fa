"""HTTP fallback: fetch a DAG from an IPFS trustless gateway, verifying every block.

A gateway is untrusted like any peer: each block must hash to its CID and belong to the DAG
being fetched (it must be linked from a block we already accepted), else the gateway is refused
with a ``DigestMismatchError`` naming it and the block. With nothing of the DAG cached we ask for
the whole DAG as one CAR stream (``?format=car``, depth-first, so parents come before children);
when part of it is cached (a resumed fetch) we ask only for the missing blocks
(``?format=raw``), one keep-alive connection, so a block already stored is never fetched again.
"""

from __future__ import annotations

import contextlib
import http.client
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from cheng_build.cas.car import CarError, read_sections
from cheng_build.core.errors import DigestMismatchError, NotFoundError, TransportError, UsageError
from cheng_build.pkg.fetch.blocks import (
    CODEC_RAW,
    BlockStore,
    child_cids,
    cid_text,
    codec_of,
    dag_size,
    matches,
    to_cid,
)
from cheng_build.pkg.fetch.http_limits import (
    FIRST_CAR_CAP,
    Capped,
    HttpLimits,
    TooLargeError,
    Watchdog,
    car_cap,
)
from cheng_build.pkg.fetch.sink import BlockSink

# Received bytes handed to the store's worker thread at a time (it stages them as temp files
# while the next ones arrive; the durable commit is BlockSink's).
BATCH_BYTES = 2 * 1024 * 1024
# Batches handed over and not yet staged before the reader waits (bounds the memory held:
# about PENDING_BATCHES * BATCH_BYTES).
PENDING_BATCHES = 4


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
    """One keep-alive connection to a gateway, every request under :class:`HttpLimits`."""

    def __init__(self, url: str, limits: HttpLimits | None = None,
                 watchdog: Watchdog | None = None) -> None:
        self.url = url
        self.limits = limits or HttpLimits()
        self.watchdog = watchdog
        self.deadline_s = 0.0
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        # The socket timeout is the idle bound: no byte for this long and the read fails.
        return cls(parts.hostname or "127.0.0.1", parts.port, timeout=self.limits.idle_s)

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = self._connect()

    def too_slow(self) -> TransportError | None:
        """The deadline error when the watchdog cut the request in flight, else None."""
        if self.watchdog is None or not self.watchdog.fired:
            return None
        return TransportError(f"gateway {self.url} too slow",
                              why=f"no complete answer within {self.deadline_s:g} s (the per-request "
                                  "deadline; a gateway trickling bytes is cut off)",
                              how="use another gateway, or raise PKG_HTTP_DEADLINE_S on a slow link")

    def done(self) -> None:
        """The request's answer has been read: stop its deadline."""
        if self.watchdog is not None:
            self.watchdog.disarm()

    def get(self, cid_bytes: bytes, fmt: str) -> http.client.HTTPResponse:
        cid = cid_text(cid_bytes)
        accept = "application/vnd.ipld.car" if fmt == "car" else "application/vnd.ipld.raw"
        lim = self.limits
        self.deadline_s = lim.car_total_s if fmt == "car" else lim.block_total_s
        if self.watchdog is not None:
            self.watchdog.arm(self.deadline_s, None)  # connecting: the idle timeout bounds it
        try:
            self.conn.request("GET", f"/ipfs/{cid}?format={fmt}", headers={"Accept": accept})
            if self.watchdog is not None:
                # The socket exists now; hold it, not the connection (which drops its socket
                # once an HTTP/1.0 answer starts, while the answer is still read from it).
                self.watchdog.arm(self.deadline_s, self.conn.sock)
            resp = self.conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.done()
            raise self.too_slow() or TransportError(f"gateway {self.url} unreachable",
                                                    why=str(exc)) from exc
        if resp.status != 200:
            # Never read an error answer's body: its size is the gateway's choice. Drop the
            # connection instead (the next request opens a fresh one).
            self.done()
            resp.close()
            self.reconnect()
            if resp.status == 404:
                raise NotFoundError(f"gateway {self.url} does not have {cid}")
            raise TransportError(f"gateway {self.url} answered {resp.status} {resp.reason} for {cid}")
        return resp

    def read_block(self, cid_bytes: bytes, resp: http.client.HTTPResponse) -> bytes:
        """A raw block's body, refused when larger than a block can be."""
        cap = self.limits.max_block
        length = resp.getheader("Content-Length")
        try:
            if length is not None and length.isdigit() and int(length) > cap:
                raise TooLargeError(f"gateway {self.url} answers {cid_text(cid_bytes)} with "
                                    f"{int(length)} bytes",
                                    why=f"a block is at most {cap} bytes; the gateway is broken "
                                        "or hostile", how="remove the gateway from the peers")
            data = resp.read(cap + 1)
            if len(data) > cap:
                raise TooLargeError(f"gateway {self.url} answers {cid_text(cid_bytes)} with more "
                                    f"than {cap} bytes",
                                    why="a block is never that large; the gateway is broken or "
                                        "hostile", how="remove the gateway from the peers")
        except TooLargeError:
            self.done()
            resp.close()
            self.reconnect()
            raise
        except (OSError, http.client.HTTPException) as exc:
            self.done()
            resp.close()
            raise self.too_slow() or TransportError(f"gateway {self.url} broke off",
                                                    why=str(exc)) from exc
        self.done()
        return data

    def close(self) -> None:
        self.conn.close()


def _refuse(url: str, cid_bytes: bytes, what: str) -> DigestMismatchError:
    return DigestMismatchError(f"gateway {url} sent a bad block {cid_text(cid_bytes)}", why=what,
                               how="the gateway is corrupt or hostile; remove it from the peers")


def fetch_dag(store: BlockStore, root: bytes, gateway: str, *,
              on_block: Callable[[int], None] | None = None,
              limits: HttpLimits | None = None) -> HttpStats:
    """Fetch every missing block of the DAG under ``root`` from ``gateway``.

    Every answer is bounded in size and time (:mod:`.http_limits`; ``limits`` default: from
    the environment).

    Raises:
        DigestMismatchError: the gateway sent bytes that do not hash to their CID, or a block that
            is not part of the DAG.
        NotFoundError: the gateway lacks a block.
        TransportError: the gateway cannot be reached or broke off.
    """
    url = gateway_url(gateway)
    stats = HttpStats()
    watchdog = Watchdog()
    client = _Client(url, limits or HttpLimits.from_env(), watchdog)
    writer = _Writer(store, stats, on_block, url)
    try:
        complete = False
        if not store.has(to_cid(root)):
            try:
                complete = _fetch_car(client, store, root, stats, writer)
            finally:
                writer.flush()  # whatever arrived verified is kept: a later fetch resumes
        if not complete:  # a resumed fetch, or a CAR that broke off or left blocks out
            _fill_missing(client, store, root, stats, writer)
    finally:
        try:
            writer.close()
        finally:
            client.close()
            watchdog.close()
    return stats


class _Writer:
    """Received blocks go to the store through two worker threads while the next ones are read
    from the network, handed over ~``BATCH_BYTES`` at a time: one thread hashes the blocks left
    unchecked (raw leaves, see :meth:`add_unchecked`), the other stages the checked ones into
    one long store batch (:class:`BlockSink`; one hash per block: the one that verified it) and
    makes them durable. Up to ``PENDING_BATCHES`` batches are in flight, so a slow write does not
    stall the socket at once."""

    def __init__(self, store: BlockStore, stats: HttpStats, on_block: Callable[[int], None] | None,
                 url: str = ""):
        self.stats, self.on_block, self.url = stats, on_block, url
        self.sink = BlockSink(store)
        # (binary CID, bytes, checked yet?)
        self.items: list[tuple[bytes, bytes | memoryview, bool]] = []
        self.size = 0
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-verify")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-store")
        self._pending: deque[Future[None]] = deque()  # staging batches, oldest first

    def add(self, c: bytes, data: bytes | memoryview) -> None:
        """Queue one block whose bytes were just checked against ``c``."""
        self._queue(c, data, True)

    def add_unchecked(self, c: bytes, data: bytes | memoryview) -> None:
        """Queue one block whose bytes are not yet checked against ``c``: a worker hashes it
        (while the next bytes are received) and it is staged only if it matches; a mismatch
        refuses the gateway from a later :meth:`flush`, after the blocks before it are staged.
        Only for blocks nothing reads before they are stored (raw leaves: no links to follow)."""
        self._queue(c, data, False)

    def _queue(self, c: bytes, data: bytes | memoryview, checked: bool) -> None:
        self.items.append((c, data, checked))
        self.size += len(data)
        self.stats.blocks_fetched += 1
        self.stats.bytes_fetched += len(data)
        if self.on_block is not None:
            self.on_block(len(data))
        if self.size >= BATCH_BYTES:
            self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Hand over what is buffered; with ``wait``, return once it is committed (durable).

        Raises:
            DigestMismatchError: a block left unchecked did not hash to its CID.
            StoreError: the store could not be written.
        """
        items, self.items, self.size = self.items, [], 0
        if items:
            checked = self._hasher.submit(_check, items)
            self._pending.append(self._pool.submit(self._stage, checked))
        limit = 0 if wait else PENDING_BATCHES
        while len(self._pending) > limit:
            self._pending.popleft().result()  # re-raises a refusal or a store error here
        if wait:
            self._pool.submit(self.sink.commit).result()

    def _stage(self, checked: Future[tuple[list[tuple[bytes, bytes | memoryview]], bytes | None]]
               ) -> None:
        """On the store thread, in batch order: stage the blocks up to the first bad one (those
        are verified and kept), then refuse the gateway for the bad one."""
        good, bad = checked.result()
        self.sink.stage(good)
        if bad is not None:
            raise _refuse(self.url, bad, "its bytes do not hash to its CID")

    def close(self) -> None:
        try:
            try:
                self.flush()
            finally:
                while self._pending:  # after a refusal: let the batches in flight finish
                    with contextlib.suppress(Exception):
                        self._pending.popleft().result()
        finally:
            try:
                self._pool.submit(self.sink.close).result()
            finally:
                self._pool.shutdown(wait=True)
                self._hasher.shutdown(wait=True)


def _check(items: list[tuple[bytes, bytes | memoryview, bool]]
           ) -> tuple[list[tuple[bytes, bytes | memoryview]], bytes | None]:
    """On the hashing thread: the blocks before the first one that fails its check, and that
    one's CID (None when all pass). ``hashlib`` lets go of the GIL while it hashes."""
    good: list[tuple[bytes, bytes | memoryview]] = []
    for c, data, checked in items:
        if not checked and not matches(c, data):
            return good, c
        good.append((c, data))
    return good, None


def _fetch_car(client: _Client, store: BlockStore, root: bytes, stats: HttpStats,
               writer: _Writer) -> bool:
    """Take the DAG as one CAR; True when every block it links arrived (nothing left to ask)."""
    resp = client.get(root, "car")
    body = Capped(resp, FIRST_CAR_CAP, f"gateway {client.url}'s CAR of {cid_text(root)}")
    expected = {root}
    try:
        for c, data in read_sections(body):  # type: ignore[arg-type]
            if c not in expected:
                raise _refuse(client.url, c, "it is not linked from the DAG being fetched")
            if c != root and codec_of(c) == CODEC_RAW:
                # A raw leaf (most of the bytes) links nothing, so nothing here reads it: its
                # hash runs on a worker while the next sections arrive, and it is staged only
                # once it matches (a mismatch refuses the gateway at a later flush). No index
                # lookup here: the store's batch skips a copy it holds already.
                expected.discard(c)
                writer.add_unchecked(c, data)
                continue
            if not matches(c, data):
                raise _refuse(client.url, c, "its bytes do not hash to its CID")
            if c == root:  # now the DAG's declared size bounds the rest of the answer
                body.limit = car_cap(FIRST_CAR_CAP, dag_size(c, data), len(data))
            expected.discard(c)
            expected.update(child_cids(c, data))
            if not store.has(to_cid(c)):
                writer.add(c, data)
            else:
                stats.blocks_local += 1
        client.done()
        return not expected
    except TooLargeError:
        client.done()
        resp.close()
        client.reconnect()
        raise
    except CarError as exc:
        # Whatever arrived verified is stored; _fill_missing asks for the rest block by block.
        client.done()
        resp.close()
        slow = client.too_slow()
        client.reconnect()
        if slow is not None:
            raise slow from exc
        if not stats.blocks_fetched and not store.has(to_cid(root)):
            raise TransportError(f"gateway {client.url} sent a broken CAR", why=str(exc)) from exc
    except (OSError, http.client.HTTPException) as exc:
        client.done()
        resp.close()
        slow = client.too_slow()
        client.reconnect()
        if slow is not None:
            raise slow from exc
        if not stats.blocks_fetched and not store.has(to_cid(root)):
            raise TransportError(f"gateway {client.url} broke off", why=str(exc)) from exc
    return False


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
            data = client.read_block(c, client.get(c, "raw"))
            if not matches(c, data):
                raise _refuse(client.url, c, "its bytes do not hash to its CID")
            writer.add(c, data)
        stack.extend(child_cids(c, data))


__all__ = ["HttpStats", "fetch_dag", "gateway_url", "is_gateway"]
