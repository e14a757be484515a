"""Several processes on one bus (multiprocessing with the spawn start method)."""

from __future__ import annotations

import multiprocessing

import _workers

ctx = multiprocessing.get_context("spawn")


def test_frames_from_a_spawned_producer_arrive_in_order(bus):
    sub = bus.subscribe("data")
    p = ctx.Process(target=_workers.publish, args=(bus.name, "data", 1000))
    p.start()
    got = []
    while len(got) < 1000:
        batch = sub.recv_many(1000, timeout=10.0)
        assert batch, f"stalled after {len(got)} frames"
        got.extend(batch)
    p.join(10)
    assert p.exitcode == 0
    assert [m.payload for m in got] == [b"%d" % i for i in range(1000)]
    assert {m.producer for m in got} == {p.pid}
    assert sub.missed == 0


def test_each_frame_goes_to_exactly_one_group_member_across_processes(bus):
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    members = [ctx.Process(target=_workers.group_member, args=(bus.name, "workers", ready, results, stop)) for _ in range(3)]
    for m in members:
        m.start()
    for _ in members:
        assert ready.get(timeout=30)
    n = 3000
    for i in range(n):
        bus.publish("jobs.x", b"%d" % i)
    stop.set()
    got = [results.get(timeout=30) for _ in members]
    for m in members:
        m.join(10)
        assert m.exitcode == 0
    everything = sorted(s for g in got for s in g)
    assert everything == list(range(n))
    group = bus.stats()["groups"][0]
    assert (group["name"], group["delivered"], group["missed"]) == ("workers", n, 0)


def test_request_reply_between_two_processes(bus):
    ready = ctx.Queue()
    p = ctx.Process(target=_workers.echo, args=(bus.name, ready))
    p.start()
    assert ready.get(timeout=30)
    with bus.subscribe("pong") as replies:
        for i in range(50):
            bus.publish("ping", b"%d" % i)
            assert replies.recv(timeout=5.0).payload == b"%d" % i
    bus.publish("ping", b"stop")
    p.join(10)
    assert p.exitcode == 0


def test_a_dead_subscriber_process_is_reaped(bus):
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    p = ctx.Process(target=_workers.group_member, args=(bus.name, "g", ready, results, stop))
    p.start()
    assert ready.get(timeout=30)
    assert [s["pid"] for s in bus.stats()["subscribers"]] == [p.pid]
    p.kill()  # no cleanup in the child
    p.join()
    bus.reap()
    assert [s for s in bus.stats()["subscribers"] if s["alive"]] == []
    # The group outlives its members, like a named queue.
    assert [g["name"] for g in bus.stats()["groups"]] == ["g"]
