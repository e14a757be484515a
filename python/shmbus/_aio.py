"""asyncio support for :class:`shmbus.Subscriber` (``sub.aiter()``).

Design (measured, see python/bench/bench.py ``--aio``): a ready message is
taken at once with ``try_recv`` (no thread hop, so a busy stream costs about
what a synchronous loop costs); only when nothing is ready does the iterator
wait, in the event loop's default executor, with ``Subscriber._wait`` (GIL
released, slices of ``poll`` seconds). ``_wait`` keeps the message it got in
the subscriber, so a cancelled task loses nothing: the next receive returns
it. Polling with ``asyncio.sleep`` instead would either add up to a poll
interval of latency or burn the loop's CPU.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator

if TYPE_CHECKING:
    from ._native import Message, Subscriber


async def subscriber_aiter(sub: "Subscriber", poll: float = 0.25) -> AsyncIterator["Message"]:
    """Yield the messages of ``sub`` forever without blocking the event loop.

    Raises :class:`shmbus.Closed` once ``sub`` is closed.
    """
    loop = asyncio.get_running_loop()
    burst = 0
    while True:
        msg = sub.try_recv()
        if msg is not None:
            yield msg
            burst += 1
            if burst >= 256:
                # A long burst: let other tasks run.
                burst = 0
                await asyncio.sleep(0)
            continue
        burst = 0
        await loop.run_in_executor(None, sub._wait, poll)
