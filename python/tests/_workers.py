"""Functions run in spawned processes by the multi-process tests (must be importable)."""

from __future__ import annotations

import shmbus


def publish(name: str, topic: str, count: int) -> None:
    """Publish ``count`` frames ``b"i"`` to ``topic`` on bus ``name``."""
    with shmbus.Bus.open(name) as bus:
        for i in range(count):
            bus.publish(topic, b"%d" % i)


def group_member(name: str, group: str, ready, results, stop) -> None:
    """Join ``group`` and report every seq it gets to ``results`` until ``stop`` is set."""
    with shmbus.Bus.open(name) as bus, bus.join_group(group, "jobs.#") as member:
        ready.put(True)
        got = []
        while not stop.is_set():
            got.extend(m.seq for m in member.recv_many(256, timeout=0.05))
        got.extend(m.seq for m in member.recv_many(100_000))
        results.put(got)


def echo(name: str, ready) -> None:
    """Answer every ``ping`` with a ``pong`` carrying the same payload, until ``stop``."""
    with shmbus.Bus.open(name) as bus, bus.subscribe("ping") as sub:
        ready.put(True)
        for msg in sub:
            if msg.payload == b"stop":
                return
            bus.publish("pong", msg.payload)
