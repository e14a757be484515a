"""The Python peer of the cross-process harness (``benches/``, peer ``shmbus-py``).

The harness (``target/release/harness``) runs this program once per child
process when ``SHMBUS_BENCH_PY`` names an executable that starts it (``make
bench-harness-python`` writes one, ``build/bench/py_peer``). It speaks the
same protocol as the harness's own Rust children and as ``bench_c``:

- the role and its parameters arrive in ``SHMBUS_BENCH_CHILD`` as
  ``key=value`` tokens separated by spaces;
- the child sets up (opens the buses, subscribes), prints ``READY``, waits
  for ``GO`` on stdin (anything else, or EOF, means the parent is gone: exit
  quietly), runs, and prints ``RESULT key=value ...`` or ``ERROR message``.

Roles, each as a Python user would write it with the public API:

- ``producer``: ``bus.publish(topic, payload)`` in a loop, ``n`` times;
  reports ``t0``, ``t1`` (``CLOCK_MONOTONIC`` ns), ``cpu_ns`` (the thread's
  CPU time over that span) and ``published``;
- ``subscriber``: ``recv_many`` until delivered + missed + abandoned reaches
  ``expected``; reports ``t_end``, ``delivered``, ``missed``, ``abandoned``;
- ``ping`` / ``pong``: the latency ping-pong. The pinger stamps the round
  trip number into the payload, publishes on ``out``, waits for the echo on
  ``in`` (``recv``) and reports every one-way time (round trip / 2, ns) in
  order as ``samples``, so the harness computes the histogram and the slow
  episodes exactly as for its own children.

Every wait is bounded by ``deadline_ms``: a lost frame is an error, never a
hang. Counts are checked by the harness (delivered + missed == published).
"""

from __future__ import annotations

import os
import sys
import time

import shmbus

TOPIC = "bench.data"
ENV = "SHMBUS_BENCH_CHILD"


class PeerError(Exception):
    """A failure reported to the harness as ``ERROR``."""


def parse_spec(text: str) -> dict:
    spec = {}
    for tok in text.split():
        key, sep, value = tok.partition("=")
        if not sep:
            raise PeerError(f"bad token {tok!r}")
        spec[key] = value
    return spec


def encode(kv: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in kv.items())


def num(spec: dict, key: str) -> int:
    try:
        return int(spec[key])
    except KeyError:
        raise PeerError(f"missing {key}") from None
    except ValueError:
        raise PeerError(f"{key}: not a number: {spec[key]!r}") from None


def wait_options(name: str) -> dict:
    """The harness's wait names (``wait_name`` in child.rs) as subscribe keywords."""
    if name in ("spin", "park"):
        return {"wait": name}
    prefix = "spin-then-park-us"
    if name.startswith(prefix):
        return {"wait": "spin_then_park", "spin_us": float(name[len(prefix) :])}
    raise PeerError(f"unknown wait strategy {name!r}")


def ready_then_wait_go() -> bool:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    return sys.stdin.readline().strip() == "GO"


def stamp(payload: bytearray, i: int) -> None:
    n = min(len(payload), 8)
    payload[:n] = i.to_bytes(8, "little")[:n]


def pattern(size: int) -> bytearray:
    """The harness payload pattern (benches/src/harness/util.rs, fill_pattern)."""
    return bytearray(((j * 31 + 7) ^ (j >> 8)) & 0xFF for j in range(size))


def read_stamp(payload: bytes) -> int:
    return int.from_bytes(payload[:8], "little")


def producer(spec: dict) -> dict | None:
    bus = shmbus.Bus.open(spec["bus"])
    n = num(spec, "n")
    payload = pattern(num(spec, "payload"))
    publish = bus.publish
    if not ready_then_wait_go():
        return None
    t0, cpu0 = time.monotonic_ns(), time.thread_time_ns()
    for i in range(n):
        stamp(payload, i)
        publish(TOPIC, payload)
    t1, cpu = time.monotonic_ns(), time.thread_time_ns() - cpu0
    return {"t0": t0, "t1": t1, "cpu_ns": cpu, "published": n}


def subscriber(spec: dict, deadline: float) -> dict | None:
    if "group" in spec:
        raise PeerError("the Python peer plays broadcast subscribers only")
    bus = shmbus.Bus.open(spec["bus"])
    expected = num(spec, "expected")
    size = num(spec, "payload")
    # Every byte after the stamp is checked, as the Rust and C subscribers do.
    rest = bytes(pattern(size)[8:])
    sub = bus.subscribe(from_="newest", wait="spin")
    if not ready_then_wait_go():
        return None
    deadline += time.monotonic()
    delivered = bad = 0
    recv_many = sub.recv_many
    while delivered + sub.missed + sub.abandoned < expected:
        left = deadline - time.monotonic()
        msgs = recv_many(1024, timeout=left) if left > 0 else []
        if not msgs:
            raise PeerError(
                f"delivered {delivered} + missed {sub.missed} + abandoned {sub.abandoned} "
                f"< published {expected} at the deadline (silent loss?)"
            )
        delivered += len(msgs)
        bad += sum(1 for m in msgs if len(m) != size or not m.payload.endswith(rest))
    t_end = time.monotonic_ns()
    if bad:
        raise PeerError(f"{bad} frames had a wrong payload (length or bytes)")
    return {"t_end": t_end, "delivered": delivered, "missed": sub.missed, "abandoned": sub.abandoned}


def ping_pong(spec: dict, ping: bool, deadline: float) -> dict | None:
    out = shmbus.Bus.open(spec["out"])
    inb = shmbus.Bus.open(spec["in"])
    sub = inb.subscribe(from_="newest", **wait_options(spec["wait"]))
    n = num(spec, "n")
    warmup = num(spec, "warmup")
    size = num(spec, "payload")
    payload = bytearray(size)
    samples = []
    if not ready_then_wait_go():
        return None
    deadline += time.monotonic()
    publish, recv, clock = out.publish, sub.recv, time.perf_counter_ns
    measured_from = time.monotonic_ns()
    for i in range(warmup + n):
        left = deadline - time.monotonic()
        if ping:
            if i == warmup:
                measured_from = time.monotonic_ns()
            stamp(payload, i)
            t0 = clock()
            publish(TOPIC, payload)
            msg = recv(left) if left > 0 else None
            dt = clock() - t0
            if msg is None:
                raise PeerError(f"no frame for round trip {i} before the deadline (lost frame?)")
            if read_stamp(msg.payload) != i or len(msg) != size:
                raise PeerError(f"round trip {i}: wrong echo")
            if i >= warmup:
                samples.append(dt // 2)
        else:
            msg = recv(left) if left > 0 else None
            if msg is None:
                raise PeerError(f"no frame for round trip {i} before the deadline (lost frame?)")
            publish(TOPIC, msg.payload)
    result = {"elapsed_ns": time.monotonic_ns() - measured_from, "round_trips": n}
    if ping:
        result["samples"] = ",".join(map(str, samples)) or "-"
    return result


def run(spec: dict) -> dict | None:
    if "cpu" in spec:
        os.sched_setaffinity(0, {num(spec, "cpu")})
    deadline = num(spec, "deadline_ms") / 1000.0
    role = spec.get("role")
    if role == "producer":
        return producer(spec)
    if role == "subscriber":
        return subscriber(spec, deadline)
    if role in ("ping", "pong"):
        return ping_pong(spec, role == "ping", deadline)
    raise PeerError(f"unknown role {role!r}")


def main() -> int:
    try:
        text = os.environ.get(ENV)
        if text is None:
            raise PeerError(f"{ENV} is not set: this program is started by the harness")
        result = run(parse_spec(text))
    except (PeerError, shmbus.Error, OSError, ValueError) as e:
        sys.stdout.write(f"ERROR {type(e).__name__}: {' '.join(str(e).split())}\n")
        sys.stdout.flush()
        return 1
    if result is not None:
        sys.stdout.write(f"RESULT {encode(result)}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
