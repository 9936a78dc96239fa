"""A monotonic clock that stops while this process is not running: the clock leases are judged on.

A lease lapses when the holder has been silent for longer than the lease, measured on the
reader's own clock. On a loaded machine the reader itself can be descheduled for seconds (or its
event loop blocked by a slow disk): when it resumes, every holder looks silent for the whole
pause although the reader simply was not listening, and a takeover would turn one execution into
two. So the silence is counted only while the reader was awake: a watchdog coroutine wakes every
``tick_s``; when it comes back much later than asked, the surplus is a pause of this process and
is taken off the clock. Being generous here is always safe: a stall only delays a takeover.
"""

from __future__ import annotations

import asyncio
import time


class AwakeClock:
    """``now()``: monotonic seconds minus the pauses the watchdog saw (see the module docstring)."""

    def __init__(self, tick_s: float = 0.1, slack_s: float = 0.15) -> None:
        self.tick_s = tick_s
        self.slack_s = slack_s  # lateness below this is ordinary scheduling jitter, not a pause
        self.paused = 0.0

    def now(self) -> float:
        return time.monotonic() - self.paused

    async def watch(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (or cancelled), adding each pause of this loop to ``paused``."""
        while not stop.is_set():
            t0 = time.monotonic()
            await asyncio.sleep(self.tick_s)
            late = time.monotonic() - t0 - self.tick_s
            if late > self.slack_s:
                self.paused += late
