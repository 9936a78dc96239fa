"""A monotonic clock that stops while this process is not running: the clock leases are judged on.

A lease lapses when the holder has been silent for longer than the lease, measured on the
reader's own clock. On a loaded machine the reader itself can be descheduled for seconds (or its
event loop blocked by a slow disk): when it resumes, every holder looks silent for the whole
pause although the reader simply was not listening, and a takeover would turn one execution into
two. So the silence is counted only while the reader was awake: a watchdog coroutine wakes every
``tick_s``; when it comes back much later than asked, the surplus is a pause of this process and
is taken off the clock. Being generous here is always safe: a stall only delays a takeover.

The watchdog learns of a pause only when it runs again, and after a blocked loop any coroutine
may run first: an origin's grace check or an agent's lease check right after the pause would see
all of it as silence (an origin once skipped a run's tasks as "no node said hello" after a 3.5 s
stall). So ``now()`` stops on its own once the watchdog is overdue: the clock never runs past the
watchdog's last wake-up plus ``tick_s + slack_s``, and it never runs backwards.
"""

from __future__ import annotations

import asyncio
import time


class AwakeClock:
    """``now()``: monotonic seconds minus the pauses the watchdog saw or is overdue to see (see
    the module docstring)."""

    def __init__(self, tick_s: float = 0.1, slack_s: float = 0.15) -> None:
        self.tick_s = tick_s
        self.slack_s = slack_s  # lateness below this is ordinary scheduling jitter, not a pause
        self.paused = 0.0
        self._due: float | None = None  # when the watchdog's pause check is due at the latest

    def now(self) -> float:
        t = time.monotonic()
        if self._due is not None and t > self._due:
            t = self._due  # a pause the watchdog has not seen yet: the clock stands still
        return t - self.paused

    async def watch(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (or cancelled), adding each pause of this loop to ``paused``."""
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                self._due = t0 + self.tick_s + self.slack_s
                await asyncio.sleep(self.tick_s)
                # Only the part past the slack: now() stood still from then on (no jump back).
                late = time.monotonic() - self._due
                if late > 0:
                    self.paused += late
        finally:
            self._due = None
