"""A wake-up flag for the node agent's coroutines: set / clear / wait with a timeout.

``asyncio.Event`` has no timed wait: waiting on an event *or* ``stop`` with a timeout took two
tasks, an ``asyncio.wait`` and their cancellation on every wait (several turns of the loop;
the agent waits once or more per task it runs, and that machinery was a good part of its own
CPU per task). A :class:`Flag` waits on one future and one timer handle; ``stop`` reaches the
waits by setting every flag (:func:`relay`), and each loop checks ``stop`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Flag:
    """Like ``asyncio.Event`` (one event loop), plus ``wait(timeout)``."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float | None = None) -> bool:
        """Until the flag is set (True) or ``timeout`` seconds pass (False)."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(timeout, _expire, fut) if timeout is not None else None
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if not fut.done() or fut.cancelled():
                fut.cancel()
            if fut in self._waiters:
                self._waiters.remove(fut)
        return self._set


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def relay(stop: asyncio.Event, flags: Iterable[Flag]) -> None:
    """Set every flag once ``stop`` is set, so that no wait on them outlasts it."""
    await stop.wait()
    for f in flags:
        f.set()
