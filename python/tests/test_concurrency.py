"""GIL release, Ctrl-C during blocking waits, threads and asyncio."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import shmbus


def test_other_threads_run_while_one_waits_in_recv(bus):
    sub = bus.subscribe()
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    waiter_done = threading.Event()
    result = []

    def wait() -> None:
        result.append(sub.recv(timeout=0.5))
        waiter_done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)  # the waiter is now blocked in recv
    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.2)
    during = ticks
    stop.set()
    counter.join()
    waiter.join()
    assert result == [None]
    # With the GIL held by the waiter, the counter could not have run at all.
    assert during > 10_000


def test_a_publish_from_another_thread_wakes_a_blocked_recv(bus):
    sub = bus.subscribe()
    timer = threading.Timer(0.1, lambda: bus.publish("t", b"wake"))
    timer.start()
    t0 = time.monotonic()
    msg = sub.recv(timeout=5.0)
    timer.join()
    assert msg.payload == b"wake"
    assert time.monotonic() - t0 < 2.0


def test_recv_without_timeout_waits_until_a_message_arrives(bus):
    sub = bus.subscribe()
    threading.Timer(0.3, lambda: bus.publish("t", b"late")).start()
    assert sub.recv().payload == b"late"


def test_closing_a_subscriber_from_another_thread_stops_a_blocked_recv(bus):
    sub = bus.subscribe()
    threading.Timer(0.2, sub.close).start()
    with pytest.raises(shmbus.Closed):
        sub.recv(timeout=5.0)


def test_threads_publishing_concurrently_lose_nothing(bus):
    sub = bus.subscribe()
    n, threads = 2000, 4

    def produce(k: int) -> None:
        for i in range(n):
            bus.publish(f"t.{k}", b"%d" % i)

    ts = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    got = []
    while len(got) < n * threads:
        batch = sub.recv_many(4096, timeout=2.0)
        assert batch, "stalled"
        got.extend(batch)
    for t in ts:
        t.join()
    for k in range(threads):
        assert [m.payload for m in got if m.topic == f"t.{k}"] == [b"%d" % i for i in range(n)]
    assert sub.missed == 0


def _run_and_interrupt(script: str, bus_name: str) -> "tuple[subprocess.CompletedProcess, float]":
    """Run ``script``, wait for it to print "waiting", send SIGINT; returns the result and the stop time."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), bus_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), elapsed


@pytest.mark.parametrize(
    "loop",
    ["for msg in sub: pass", "sub.recv()", "sub.recv(timeout=60)", "sub.recv_many(10, timeout=None)"],
    ids=["iterator", "recv-forever", "recv-timeout", "recv_many"],
)
def test_ctrl_c_interrupts_a_blocking_wait(bus, loop):
    script = f"""
    import sys, shmbus
    bus = shmbus.Bus.open(sys.argv[1])
    sub = bus.subscribe()
    print("waiting", flush=True)
    try:
        {loop}
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
    done, elapsed = _run_and_interrupt(script, bus.name)
    assert done.returncode == 3, done.stderr
    assert "interrupted" in done.stdout
    assert elapsed < 2.0


def test_aiter_yields_messages_without_blocking_the_event_loop(bus):
    sub = bus.subscribe()

    async def main() -> tuple:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def producer() -> None:
            await asyncio.sleep(0.2)
            for i in range(5):
                bus.publish("t", b"%d" % i)

        tick_task = asyncio.ensure_future(ticker())
        prod_task = asyncio.ensure_future(producer())
        got = []
        async for msg in sub.aiter():
            got.append(msg.payload)
            if len(got) == 5:
                break
        stop.set()
        await tick_task
        await prod_task
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    # The ticker ran throughout the 0.2 s wait (about 40 ticks if never blocked).
    assert ticks >= 15


def test_async_for_works_on_the_subscriber_itself(bus):
    sub = bus.subscribe()
    bus.publish("t", b"x")

    async def first() -> bytes:
        async for msg in sub:
            return msg.payload
        raise AssertionError("unreachable")

    assert asyncio.run(first()) == b"x"


def test_cancelling_an_aiter_consumer_loses_no_message(bus):
    sub = bus.subscribe()

    async def main() -> bytes:
        async def consume() -> None:
            async for _ in sub.aiter(poll=0.5):
                raise AssertionError("nothing was published yet")

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.1)  # the executor thread is now waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        bus.publish("t", b"after cancel")  # may be taken by the still-running wait
        await asyncio.sleep(0.6)
        msg = sub.recv(timeout=1.0)
        return msg.payload

    assert asyncio.run(main()) == b"after cancel"


def test_many_subscribers_in_threads_each_see_every_message(bus):
    subs = [bus.subscribe() for _ in range(4)]
    results = [[] for _ in subs]

    def consume(i: int) -> None:
        while len(results[i]) < 100:
            m = subs[i].recv(timeout=5.0)
            assert m is not None
            results[i].append(m.seq)

    ts = [threading.Thread(target=consume, args=(i,)) for i in range(len(subs))]
    for t in ts:
        t.start()
    for i in range(100):
        bus.publish("t", b"")
    for t in ts:
        t.join()
    assert all(r == list(range(100)) for r in results)
    assert os.getpid() in {p["pid"] for p in bus.stats()["producers"]}
