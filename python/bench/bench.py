"""Python benchmark of shmbus next to multiprocessing.Queue (``make bench-python``).

Measures, in one run on this machine:

1. publish rate from one Python process: ``bus.publish`` in a loop and
   ``bus.publish_many`` in batches of 1000 (16-byte payloads);
2. end-to-end Python -> Python rate: a spawned process publishes, this one
   receives (``recv_many``), counted from the first publish to the last
   receive (``time.monotonic`` is system-wide on Linux);
3. one-way latency p50/p99: publishes spaced by ``time.sleep`` (so the
   producer does not compete with the reader for a CPU), the subscriber computes
   ``time.time_ns() - msg.timestamp_ns`` (the publish time stamped by the
   core), with the default wait strategy and with ``wait="spin"``;
4. the same rate and latency through ``multiprocessing.Queue``.

Prints a Markdown table. ``--quick`` uses smaller counts.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import uuid

import shmbus

PAYLOAD = b"x" * 16
TOPIC = "bench.small"


def _name(tag: str) -> str:
    return f"bench-{tag}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------- publish rate


def publish_rate(n: int) -> dict:
    name = _name("pub")
    bus = shmbus.Bus.create(name, memory_limit=64 << 20)
    try:
        pub = bus.publish
        best = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                pub(TOPIC, PAYLOAD)
            best = max(best, n / (time.perf_counter() - t0))
        batch = [PAYLOAD] * 1000
        best_many = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n // 1000):
                bus.publish_many(TOPIC, batch)
            best_many = max(best_many, (n // 1000) * 1000 / (time.perf_counter() - t0))
        return {"publish": best, "publish_many": best_many}
    finally:
        bus.close()
        shmbus.Bus.remove(name)


# ----------------------------------------------------------- end-to-end rate


def _producer(name: str, n: int, batch: int, go, start_q) -> None:
    with shmbus.Bus.open(name) as bus:
        go.wait()
        start_q.put(time.monotonic())
        if batch <= 1:
            pub = bus.publish
            for _ in range(n):
                pub(TOPIC, PAYLOAD)
        else:
            chunk = [PAYLOAD] * batch
            for _ in range(n // batch):
                bus.publish_many(TOPIC, chunk)


def e2e_rate(n: int, batch: int) -> dict:
    ctx = mp.get_context("spawn")
    name = _name("e2e")
    bus = shmbus.Bus.create(name, memory_limit=512 << 20)
    try:
        with bus.subscribe(TOPIC) as sub:
            go, start_q = ctx.Event(), ctx.Queue()
            p = ctx.Process(target=_producer, args=(name, n, batch, go, start_q))
            p.start()
            go.set()
            got = 0
            while got < n:
                msgs = sub.recv_many(4096, timeout=10.0)
                if not msgs:
                    break
                got += len(msgs)
            end = time.monotonic()
            start = start_q.get(timeout=10)
            p.join()
            return {"rate": got / (end - start), "received": got, "missed": sub.missed}
    finally:
        bus.close()
        shmbus.Bus.remove(name)


# ------------------------------------------------------------------ latency


def _paced_producer(name: str, n: int, gap_us: float, go) -> None:
    with shmbus.Bus.open(name) as bus:
        go.wait()
        time.sleep(0.05)
        gap = gap_us / 1e6
        pub = bus.publish
        for _ in range(n):
            time.sleep(gap)  # sleeping, not spinning: the producer leaves the CPU to the reader
            pub(TOPIC, PAYLOAD)
        pub(TOPIC, b"stop")


def latency(n: int, gap_us: float, wait: str) -> dict:
    ctx = mp.get_context("spawn")
    name = _name("lat")
    bus = shmbus.Bus.create(name, memory_limit=64 << 20)
    try:
        with bus.subscribe(TOPIC, wait=wait) as sub:
            go = ctx.Event()
            p = ctx.Process(target=_paced_producer, args=(name, n, gap_us, go))
            p.start()
            go.set()
            lat = []
            now = time.time_ns
            while True:
                msg = sub.recv(timeout=10.0)
                t = now()
                if msg is None or msg.payload == b"stop":
                    break
                lat.append((t - msg.timestamp_ns) / 1000)
            p.join()
        return _percentiles(lat)
    finally:
        bus.close()
        shmbus.Bus.remove(name)


def _percentiles(lat_us: list) -> dict:
    lat_us.sort()
    k = len(lat_us)
    return {
        "p50": lat_us[k // 2],
        "p99": lat_us[min(k - 1, int(k * 0.99))],
        "mean": statistics.fmean(lat_us),
        "n": k,
    }


# ------------------------------------------------------ multiprocessing.Queue


def _mpq_producer(q, n: int, go, start_q) -> None:
    go.wait()
    start_q.put(time.monotonic())
    put = q.put
    for _ in range(n):
        put(PAYLOAD)
    put(None)


def mpq_rate(n: int) -> dict:
    ctx = mp.get_context("spawn")
    q, go, start_q = ctx.Queue(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_mpq_producer, args=(q, n, go, start_q))
    p.start()
    go.set()
    got = 0
    get = q.get
    while get() is not None:
        got += 1
    end = time.monotonic()
    start = start_q.get()
    p.join()
    return {"rate": got / (end - start), "received": got, "missed": 0}


def _mpq_paced(q, n: int, gap_us: float, go) -> None:
    go.wait()
    time.sleep(0.05)
    gap = gap_us / 1e6
    for _ in range(n):
        time.sleep(gap)
        q.put((time.time_ns(), PAYLOAD))
    q.put(None)


def mpq_latency(n: int, gap_us: float) -> dict:
    ctx = mp.get_context("spawn")
    q, go = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_mpq_paced, args=(q, n, gap_us, go))
    p.start()
    go.set()
    lat = []
    while True:
        item = q.get()
        if item is None:
            break
        lat.append((time.time_ns() - item[0]) / 1000)
    p.join()
    return _percentiles(lat)


# --------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    n_pub = 200_000 if args.quick else 1_000_000
    n_e2e = 200_000 if args.quick else 1_000_000
    n_lat = 2_000 if args.quick else 10_000
    gap_us = 100.0

    print(f"# shmbus Python benchmark ({platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, shmbus {shmbus.__version__})\n", flush=True)
    pr = publish_rate(n_pub)
    e1 = e2e_rate(n_e2e, 1)
    e2 = e2e_rate(n_e2e, 1000)
    ld = latency(n_lat, gap_us, "spin_then_park")
    ls = latency(n_lat, gap_us, "spin")
    lp = latency(n_lat // 4, 1000.0, "park")
    qr = mpq_rate(n_e2e // 4)
    ql = mpq_latency(n_lat // 4, gap_us)

    def k(x: float) -> str:
        return f"{x:,.0f}"

    print("| measurement | result |")
    print("| --- | --- |")
    print(f"| publish, 16 B frames, one process (`publish` loop) | {k(pr['publish'])} frames/s |")
    print(f"| publish, 16 B frames, one process (`publish_many`, 1000/batch) | {k(pr['publish_many'])} frames/s |")
    print(f"| end-to-end Python -> Python, `publish` loop -> `recv_many` | {k(e1['rate'])} frames/s "
          f"(missed {e1['missed']}) |")
    print(f"| end-to-end Python -> Python, `publish_many` -> `recv_many` | {k(e2['rate'])} frames/s "
          f"(missed {e2['missed']}) |")
    print(f"| latency, one way, `recv`, default wait, a frame every {gap_us:.0f} us | "
          f"p50 {ld['p50']:.1f} us, p99 {ld['p99']:.1f} us |")
    print(f"| latency, one way, `recv`, `wait=\"spin\"`, a frame every {gap_us:.0f} us | "
          f"p50 {ls['p50']:.1f} us, p99 {ls['p99']:.1f} us |")
    print(f"| latency, one way, `recv`, `wait=\"park\"`, a frame every 1 ms | "
          f"p50 {lp['p50']:.1f} us, p99 {lp['p99']:.1f} us |")
    print(f"| `multiprocessing.Queue` rate, same payload | {k(qr['rate'])} messages/s |")
    print(f"| `multiprocessing.Queue` latency, a message every {gap_us:.0f} us | "
          f"p50 {ql['p50']:.1f} us, p99 {ql['p99']:.1f} us |")
    leftovers = [b for b in shmbus.Bus.list() if b.startswith(f"bench-") and str(os.getpid()) in b]
    assert not leftovers, leftovers
    return 0


if __name__ == "__main__":
    sys.exit(main())
