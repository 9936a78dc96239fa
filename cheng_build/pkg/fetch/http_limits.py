"""Bounds on what one gateway answer may cost: bytes, idle time and total time.

A gateway is untrusted. Without bounds, one answering a block request with 1.5 GiB pushes the
fetcher's memory to that size, and one sending a byte every 10 s holds it forever (each byte
resets a plain socket timeout). So every request has:

* a size cap: a raw block at most :data:`MAX_BLOCK` bytes (checked on ``Content-Length`` before
  reading, and while reading, which is bounded to one byte past the cap); a CAR at most the
  DAG's declared size plus framing, known once its root block has arrived (before that: one
  header and one block); an error answer's body is never read at all;
* an idle timeout (no byte for ``idle_s``: the socket's own timeout);
* a total deadline (``block_total_s`` for a block, ``car_total_s`` for a CAR stream), enforced
  by one watchdog thread per fetch that shuts the socket down when it passes, however slowly
  the bytes trickle in.

``PKG_HTTP_IDLE_S`` and ``PKG_HTTP_DEADLINE_S`` (seconds; the deadline applies to blocks and
CARs alike) override the defaults, for slow links and for tests.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from cheng_build.cas.car import LIMITS as CAR_LIMITS  # the one set of CAR limits (cas.car)
from cheng_build.core.errors import TransportError

MAX_BLOCK = CAR_LIMITS.max_section  # no IPFS tool exchanges blocks over 2 MiB; 4 MiB is generous
# Per section of a CAR: a length varint (<= 10 bytes) and a CID (<= 69 bytes for sha2-256 and
# blake3). Each section's framing is matched by the link to it in its parent block, which the
# declared size counts, so a CAR never needs more than the declared size twice over in framing.
_FRAMING_FACTOR = 2
_SLACK = 4096


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Every bound on one gateway answer, in one place."""

    idle_s: float = 30.0
    block_total_s: float = 60.0
    car_total_s: float = 1800.0
    max_block: int = MAX_BLOCK

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HttpLimits:
        """Defaults, with ``PKG_HTTP_IDLE_S`` / ``PKG_HTTP_DEADLINE_S`` applied when set."""
        e = os.environ if env is None else env
        out = cls()
        idle, total = e.get("PKG_HTTP_IDLE_S"), e.get("PKG_HTTP_DEADLINE_S")
        try:
            if idle:
                out = cls(float(idle), out.block_total_s, out.car_total_s, out.max_block)
            if total:
                out = cls(out.idle_s, float(total), float(total), out.max_block)
        except ValueError:
            from cheng_build.core.errors import UsageError

            raise UsageError("PKG_HTTP_IDLE_S / PKG_HTTP_DEADLINE_S must be numbers of seconds",
                             why=f"got {idle!r} / {total!r}") from None
        return out


def car_cap(consumed: int, declared: int | None, root_len: int) -> int | None:
    """The most bytes a CAR answer may hold in all, once its root block (``root_len`` bytes)
    has arrived after ``consumed`` bytes: the rest of the declared DAG plus its framing. None
    when the root does not declare sizes (then only the per-block and linked-only checks bound
    it)."""
    if declared is None:
        return None
    rest = max(0, declared - root_len)
    return consumed + rest * (1 + _FRAMING_FACTOR) + _SLACK


FIRST_CAR_CAP = CAR_LIMITS.max_header + 10 + CAR_LIMITS.max_section + 10 + _SLACK


class TooLargeError(TransportError):
    """A gateway answer is larger than the request can legitimately be."""


class Capped:
    """A response body that refuses to deliver more than ``limit`` bytes (``None``: no cap).

    Reads go straight into the caller's buffer (no copy); a read is shortened to at most one
    byte past the cap, so memory never follows what the gateway sends.
    """

    def __init__(self, resp: Any, limit: int | None, what: str) -> None:
        self.resp = resp
        self.limit = limit
        self.what = what
        self.count = 0

    def readinto(self, view: memoryview) -> int:
        if self.limit is not None:
            allowed = self.limit - self.count + 1
            if allowed < len(view):
                view = view[:max(1, allowed)]
        n = int(self.resp.readinto(view) or 0)
        self.count += n
        if self.limit is not None and self.count > self.limit:
            raise TooLargeError(f"{self.what} is larger than the request can be",
                                why=f"more than {self.limit} bytes (the DAG's declared size plus "
                                    "framing); the gateway is broken or hostile",
                                how="remove the gateway from the peers")
        return n


class Watchdog:
    """One thread that enforces the total deadline of the request in flight: when it passes,
    the socket is shut down, so the blocked read returns at once and :attr:`fired` says why."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        self.fired = False
        self._thread = threading.Thread(target=self._run, name="http-deadline", daemon=True)
        self._thread.start()

    def arm(self, seconds: float, sock: socket.socket | None) -> None:
        """Start (or restart) the deadline of one request read from ``sock``."""
        with self._cond:
            self.fired = False
            self._deadline = time.monotonic() + seconds
            self._sock = sock
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None
            self._sock = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                sock = self._sock
                self.fired = True
                self._deadline = None
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


__all__ = ["FIRST_CAR_CAP", "MAX_BLOCK", "Capped", "HttpLimits", "TooLargeError", "Watchdog",
           "car_cap"]
