"""The agent's wake-up flags (cis/node/flag.py): a timed wait on one future, and ``stop``
reaching every wait through the relay (the agent's loops end when it is set)."""

from __future__ import annotations

import asyncio

from cheng_build.cis.node.flag import Flag, relay


def test_a_wait_ends_when_set_or_when_its_time_is_up() -> None:
    async def main() -> None:
        f = Flag()
        assert await f.wait(0.01) is False and not f._waiters  # timed out, nothing left behind
        waiters = [asyncio.create_task(f.wait(60)) for _ in range(3)]
        await asyncio.sleep(0)
        f.set()
        assert await asyncio.gather(*waiters) == [True, True, True]
        assert await f.wait(60) is True  # already set: no wait
        f.clear()
        assert not f.is_set() and await f.wait(0) is False

    asyncio.run(main())


def test_a_cancelled_wait_leaves_no_waiter() -> None:
    async def main() -> None:
        f = Flag()
        w = asyncio.create_task(f.wait(60))
        await asyncio.sleep(0)
        w.cancel()
        try:
            await w
        except asyncio.CancelledError:
            pass
        assert not f._waiters
        f.set()  # nothing to wake, nothing raised

    asyncio.run(main())


def test_stop_wakes_every_wait_through_the_relay() -> None:
    async def main() -> None:
        stop = asyncio.Event()
        flags = [Flag(), Flag()]
        job = asyncio.create_task(relay(stop, flags))
        waits = [asyncio.create_task(f.wait(600)) for f in flags]
        await asyncio.sleep(0)
        stop.set()
        assert await asyncio.wait_for(asyncio.gather(*waits), 60) == [True, True]  # a hang guard only
        await job

    asyncio.run(main())
