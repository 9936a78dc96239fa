"""Coffee mode: keep working on café Wi-Fi. Measure the network, queue run events locally while it
is weak or gone, and deliver them to the room when it comes back.

* **Network check**: a TCP connect to each configured peer (libp2p multiaddrs such as
  ``/ip4/10.0.0.5/tcp/4001/p2p/...``, ``host:port`` or the room's ``http://host:port``); the round
  trip of the fastest one decides: under :data:`WEAK_MS` (500 ms) good, above it weak, nobody
  answering offline. A TCP connect is used rather than ICMP ping because it needs no privileges
  and measures exactly the path our traffic takes. With no peer configured, an mDNS query
  (224.0.0.251:5353) that anyone answers counts as a local network.
* **Outbox** (``$CIS_HOME/coffee.db``, SQLite in WAL mode, like the run store): every run event
  (the store's ``events`` table) is copied into ``outbox`` once, in id order, with a per-run
  cursor; entries stay until the room acknowledged them (``sent``)::

      outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, event_id INTEGER, ts REAL,
             idx INTEGER, kind TEXT, data TEXT, sent REAL)   -- UNIQUE(run_id, event_id)
      INDEX outbox_unsent ON outbox(id) WHERE sent IS NULL   -- the queue, however long the rest
      cursor(run_id TEXT PRIMARY KEY, last_event INTEGER)
      status(k INTEGER PRIMARY KEY CHECK (k = 0), ts REAL, state TEXT, rtt_ms REAL, detail TEXT,
             sent_total INTEGER)                             -- the latest check, for the web view

* **Sync**: when the network is good, pending entries go to the room in batches (HTTP POST of
  ``{"node": <hostname>, "events": [...]}``, JSON, answered 2xx) and are marked sent; weak or
  offline, nothing is sent and the queue grows. Delivery is at least once; each event carries
  ``(node, run_id, event_id)`` so a room can drop duplicates.
* **Detach**: in weak or no network a run whose tasks are all Mechanical needs nobody, so
  ``auto_detach`` says to run it in the background (``cis attach`` brings it back).
"""

from __future__ import annotations

import enum
import json
import os
import socket
import sqlite3
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cheng_build.cis.dag.model import Dag, LevelKind
from cheng_build.core.errors import UsageError

if TYPE_CHECKING:
    from cheng_build.cis.run.store import Store

WEAK_MS = 500.0
BATCH = 200


class NetState(enum.Enum):
    GOOD = "good"
    WEAK = "weak"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """The outcome of one network check."""

    state: NetState
    rtt_ms: float | None
    target: str
    detail: str


def parse_target(target: str) -> tuple[str, int]:
    """``(host, port)`` of a multiaddr (/ip4|ip6|dns|dns4|dns6/<h>/tcp/<p>/...), URL or host:port.

    Raises:
        UsageError: it names no TCP endpoint.
    """
    t = target.strip()
    if t.startswith("/"):
        parts = t.split("/")[1:]
        host = port = None
        for i in range(0, len(parts) - 1, 2):
            proto, val = parts[i], parts[i + 1]
            if proto in ("ip4", "ip6", "dns", "dns4", "dns6"):
                host = val
            elif proto == "tcp":
                port = val
        if host and port and port.isdigit():
            return host, int(port)
    elif "://" in t:
        u = urlsplit(t)
        if u.hostname:
            return u.hostname, u.port or (443 if u.scheme == "https" else 80)
    else:
        host, sep, port = t.rpartition(":")
        if sep and host and port.isdigit():
            return host.strip("[]"), int(port)
    raise UsageError(f"not a peer address: {target!r}",
                     how="give /ip4/<host>/tcp/<port>/..., http://host:port or host:port")


def tcp_rtt_ms(host: str, port: int, timeout: float) -> float:
    """Milliseconds to complete a TCP connect. Raises OSError when it cannot."""
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout):
        return (time.perf_counter() - t0) * 1000.0


def mdns_answer(timeout: float = 1.0) -> bool:
    """Does anything on the local link answer an mDNS service-enumeration query?"""
    name = b"".join(bytes([len(p)]) + p for p in (b"_services", b"_dns-sd", b"_udp", b"local")) + b"\0"
    query = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + name + struct.pack(">HH", 12, 1)  # PTR, IN
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            s.sendto(query, ("224.0.0.251", 5353))
            s.recvfrom(9000)
            return True
    except OSError:
        return False


def check_network(targets: Sequence[str], *, timeout: float = 2.0, weak_ms: float = WEAK_MS,
                  mdns: Callable[[float], bool] = mdns_answer) -> NetworkStatus:
    """Good / weak / offline from the fastest configured peer (or mDNS when none is configured)."""
    if not targets:
        if mdns(min(timeout, 1.0)):
            return NetworkStatus(NetState.GOOD, None, "mdns", "an mDNS responder answered")
        return NetworkStatus(NetState.OFFLINE, None, "mdns",
                             "no peers configured and no mDNS responder answered")
    best: tuple[float, str] | None = None
    errors = []
    for t in targets:
        host, port = parse_target(t)
        try:
            ms = tcp_rtt_ms(host, port, timeout)
        except OSError as exc:
            errors.append(f"{t}: {exc.strerror or exc}")
            continue
        if best is None or ms < best[0]:
            best = (ms, t)
    if best is None:
        return NetworkStatus(NetState.OFFLINE, None, "", "; ".join(errors)[:300])
    ms, who = best
    state = NetState.GOOD if ms <= weak_ms else NetState.WEAK
    return NetworkStatus(state, round(ms, 1), who,
                         f"{who} answered in {ms:.0f} ms ({'over' if state is NetState.WEAK else 'under'} "
                         f"{weak_ms:.0f} ms)")


class Outbox:
    """Run events waiting for the room (see the module docstring for the schema)."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.path = Path(home) / "coffee.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, "
            "event_id INTEGER, ts REAL, idx INTEGER, kind TEXT, data TEXT, sent REAL, "
            "UNIQUE(run_id, event_id));"
            # What is still to send, indexed: pending() and queued() stay as cheap as the queue
            # is short, however many sent rows a long-lived node (cis node) has kept.
            "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(id) WHERE sent IS NULL;"
            "CREATE TABLE IF NOT EXISTS cursor(run_id TEXT PRIMARY KEY, last_event INTEGER);"
            "CREATE TABLE IF NOT EXISTS status(k INTEGER PRIMARY KEY CHECK (k = 0), ts REAL, "
            "state TEXT, rtt_ms REAL, detail TEXT, sent_total INTEGER);")

    def close(self) -> None:
        self.db.close()

    def collect(self, store: Store) -> int:
        """Copy every run event not yet queued; return how many were added."""
        added = 0
        for run_id, *_ in store.list_runs(limit=1_000_000):
            row = self.db.execute("SELECT last_event FROM cursor WHERE run_id=?", (run_id,)).fetchone()
            last = row[0] if row else 0
            evs = store.events(run_id, last)
            if not evs:
                continue
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for eid, idx, ts, kind, data in evs:
                    cur = self.db.execute(
                        "INSERT OR IGNORE INTO outbox(run_id, event_id, ts, idx, kind, data) "
                        "VALUES(?,?,?,?,?,?)", (run_id, eid, ts, idx, kind, json.dumps(data)))
                    added += cur.rowcount
                self.db.execute("INSERT OR REPLACE INTO cursor VALUES(?,?)", (run_id, evs[-1][0]))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return added

    def pending(self, limit: int = BATCH) -> list[dict[str, Any]]:
        return [{"id": r[0], "run_id": r[1], "event_id": r[2], "ts": r[3], "idx": r[4],
                 "kind": r[5], "data": json.loads(r[6])} for r in self.db.execute(
            "SELECT id, run_id, event_id, ts, idx, kind, data FROM outbox WHERE sent IS NULL "
            "ORDER BY id LIMIT ?", (limit,))]

    def record(self, status: NetworkStatus, sent: int) -> None:
        """Keep the latest check (the web view shows it) and the running total sent."""
        self.db.execute(
            "INSERT INTO status VALUES(0,?,?,?,?,?) ON CONFLICT(k) DO UPDATE SET ts=excluded.ts, "
            "state=excluded.state, rtt_ms=excluded.rtt_ms, detail=excluded.detail, "
            "sent_total=status.sent_total+excluded.sent_total",
            (time.time(), status.state.value, status.rtt_ms, status.detail, sent))

    def queued(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NULL").fetchone()[0])

    def mark_sent(self, ids: Sequence[int]) -> None:
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("UPDATE outbox SET sent=? WHERE id=?", [(now, i) for i in ids])
        self.db.execute("COMMIT")


def http_sender(room: str, timeout: float = 10.0) -> Callable[[list[dict[str, Any]]], None]:
    """POST batches to ``room``; raises OSError unless it answers 2xx."""
    node = socket.gethostname()

    def send(events: list[dict[str, Any]]) -> None:
        body = json.dumps({"node": node, "events": [{k: v for k, v in e.items() if k != "id"}
                                                     for e in events]}).encode()
        req = urllib.request.Request(room, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                if not 200 <= r.status < 300:
                    raise OSError(f"room answered HTTP {r.status}")
        except urllib.error.HTTPError as exc:  # before URLError: it is a subclass
            raise OSError(f"room answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"room unreachable: {exc.reason}") from None

    return send


@dataclass(frozen=True, slots=True)
class SyncResult:
    status: NetworkStatus
    collected: int
    sent: int
    queued: int
    error: str = ""


def sync_once(store: Store, outbox: Outbox, targets: Sequence[str],
              send: Callable[[list[dict[str, Any]]], None], *, weak_ms: float = WEAK_MS,
              timeout: float = 2.0) -> SyncResult:
    """Queue new events; when the network is good, deliver the queue in batches."""
    collected = outbox.collect(store)
    status = check_network(targets, timeout=timeout, weak_ms=weak_ms)
    sent = 0
    error = ""
    if status.state is NetState.GOOD:
        while batch := outbox.pending():
            try:
                send(batch)
            except OSError as exc:
                error = str(exc)
                break
            outbox.mark_sent([e["id"] for e in batch])
            sent += len(batch)
    outbox.record(status, sent)
    return SyncResult(status, collected, sent, outbox.queued(), error)


def read_status(home: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last check and the queue length from ``coffee.db``, or None when coffee never ran."""
    path = Path(home) / "coffee.db"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            row = db.execute("SELECT ts, state, rtt_ms, detail, sent_total FROM status").fetchone()
            queued = db.execute("SELECT COUNT(*) FROM outbox WHERE sent IS NULL").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    return {"checked": row[0], "state": row[1], "rtt_ms": row[2], "detail": row[3],
            "sent_total": row[4], "queued": int(queued)}


def auto_detach(dag: Dag, status: NetworkStatus) -> bool:
    """Weak or no network and nothing in the DAG needs a person: run it in the background."""
    return status.state is not NetState.GOOD and all(
        t.level.kind is LevelKind.MECHANICAL for t in dag.tasks)


__all__ = ["WEAK_MS", "NetState", "NetworkStatus", "Outbox", "SyncResult", "auto_detach",
           "check_network", "http_sender", "mdns_answer", "parse_target", "read_status", "sync_once",
           "tcp_rtt_ms"]
