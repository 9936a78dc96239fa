"""Checking every signature of a registry log, in worker threads beside the rule replay.

libsodium releases the GIL (PyNaCl's cffi binding), so with several CPUs chunks of the log verify
in threads while the main thread parses or replays; with one CPU (or a short log) they run inline
when asked for. A publish line parse_line's fast path took is checked on a fast path too.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Sequence

from cheng_build.core.errors import SignatureError
from cheng_build.trust import canonical
from cheng_build.trust.keys import Verifier
from cheng_build.trust.registry_entry import RegistryEntry, SigStatus, signature_status

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from typing import Any


PARALLEL_MIN = 512


def cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_sigs(entries: Sequence[RegistryEntry]) -> list[tuple[int, str]]:
    """(line, reason) of every line in ``entries`` whose signature is not valid."""
    verifier = Verifier()
    check, public, b64 = verifier.check, verifier.public, binascii.a2b_base64
    payload = canonical.publish_payload_normal
    bad = []
    for e in entries:
        # Fast path for the common case, a signed publish line parse_line's fast path took (its
        # forms are checked: the payload needs no normalising); anything unusual (and every
        # failure) is decided, with its reason, by signature_status.
        hot, sh = e.hot, e.ast_simhash64
        if hot is not None and sh is not None:
            _seq, _prev, pkg, author, channel, cid, epoch, fmt, pub, sig, score = hot
            if len(sig) == 96 and score is not None and sig.startswith("ed25519:"):
                try:
                    if check(public(pub), payload(sh, author, channel, cid, epoch, fmt, score, pkg),
                             b64(sig[8:], strict_mode=True)):
                        continue
                except (ValueError, SignatureError):
                    pass
        status, why = signature_status(e, verifier)
        if status is not SigStatus.VALID:
            bad.append((e.line, why))
    return bad


class SigCheck:
    """Signature checks running beside the rule replay.

    libsodium releases the GIL (PyNaCl's cffi binding), so with several CPUs the chunks verify in
    worker threads while the main thread replays the chain and rules; with one CPU (or a short
    log) they run inline when asked for.
    """

    def __init__(self, entries: Sequence[RegistryEntry], threads: int, *,
                 started: tuple[ThreadPoolExecutor, list[Any], list[int]] | None = None,
                 skip: int = 0) -> None:
        self._skip = skip
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Any] = []
        if started is not None:
            self._pool, self._futures, ends = started
            if skip:
                # Chunks wholly inside the skipped prefix need not run (those already running
                # finish; their results are ignored).
                for f, chunk_end in zip(self._futures, ends, strict=True):
                    if chunk_end <= skip:
                        f.cancel()
        entries = entries[skip:]
        self._entries = entries
        if started is None and threads > 1 and len(entries) >= PARALLEL_MIN:
            from concurrent.futures import ThreadPoolExecutor  # lazily: it imports logging

            step = -(-len(entries) // threads)
            self._pool = ThreadPoolExecutor(threads)
            self._futures = [self._pool.submit(check_sigs, entries[i:i + step])
                             for i in range(0, len(entries), step)]

    def failures(self) -> list[tuple[int, str]]:
        """Every bad line past the skipped prefix, in line order."""
        if self._pool is None:
            return check_sigs(self._entries)
        try:
            out: list[tuple[int, str]] = []
            for f in self._futures:
                if not f.cancelled():
                    out.extend(x for x in f.result() if x[0] > self._skip)
            return sorted(out)
        finally:
            self._pool.shutdown()


__all__ = ["PARALLEL_MIN", "SigCheck", "check_sigs", "cpus"]
