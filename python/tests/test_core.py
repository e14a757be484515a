"""Core API round trips: publish, subscribe, filters, groups, stats, lifecycle."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

import shmbus


def test_package_is_imported_from_the_installed_wheel_not_the_source_tree():
    here = Path(shmbus.__file__).resolve()
    assert "site-packages" in here.parts or "dist-packages" in here.parts, here
    assert (here.parent / "py.typed").exists()
    assert (here.parent / "_native.pyi").exists()


def test_published_payload_and_metadata_round_trip(bus):
    sub = bus.subscribe("events.process.#")
    cid, pid, rid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    before = time.time_ns()
    seq = bus.publish(
        "events.process.lifecycle",
        b"payload",
        kind="log",
        event_type="new",
        correlation_id=cid,
        parent_id=pid,
        root_id=rid,
    )
    msg = sub.recv(timeout=1.0)
    assert msg is not None
    assert msg.topic == "events.process.lifecycle"
    assert msg.payload == b"payload"
    assert msg.seq == seq
    assert msg.kind == "log"
    assert msg.event_type == "new"
    assert (msg.correlation_id, msg.parent_id, msg.root_id) == (cid, pid, rid)
    assert msg.producer == __import__("os").getpid()
    assert before <= msg.timestamp_ns <= time.time_ns()
    assert abs(msg.timestamp - msg.timestamp_ns / 1e9) < 1e-6
    assert len(msg) == 7


def test_defaults_are_event_other_and_no_correlation(bus):
    sub = bus.subscribe()
    bus.publish("a", b"x")
    msg = sub.recv(timeout=1.0)
    assert (msg.kind, msg.event_type, msg.correlation_id, msg.parent_id, msg.root_id) == (
        "event",
        "other",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"memoryview"), b"memoryview"),
        ("str \u00e9\u00e8", "str \u00e9\u00e8".encode()),
        (b"", b""),
    ],
)
def test_every_payload_type_is_published_as_bytes(bus, payload, expected):
    sub = bus.subscribe("t")
    bus.publish("t", payload)
    assert sub.recv(timeout=1.0).payload == expected


def test_integer_correlation_ids_are_returned_as_uuids(bus):
    sub = bus.subscribe()
    bus.publish("t", b"", correlation_id=42)
    assert sub.recv(timeout=1.0).correlation_id == uuid.UUID(int=42)


def test_str_enum_values_are_accepted_for_kind_and_event_type(bus):
    import enum

    class Verb(str, enum.Enum):
        new = "new"

    sub = bus.subscribe()
    bus.publish("t", b"", event_type=Verb.new)
    assert sub.recv(timeout=1.0).event_type == "new"


def test_json_and_text_decode_the_payload(bus):
    sub = bus.subscribe()
    bus.publish("t", json.dumps({"a": [1, 2]}))
    msg = sub.recv(timeout=1.0)
    assert msg.json() == {"a": [1, 2]}
    assert msg.text == '{"a": [1, 2]}'


def test_wildcard_subscription_sees_only_matching_topics(bus):
    sub = bus.subscribe("events.+.start")
    hash_sub = bus.subscribe("events.#")
    for t in ["events.a.start", "events.a.stop", "events.b.start", "other.a.start", "events"]:
        bus.publish(t, t)
    got = [m.topic for m in sub.recv_many(100, timeout=1.0)]
    assert got == ["events.a.start", "events.b.start"]
    got = [m.topic for m in hash_sub.recv_many(100, timeout=1.0)]
    assert got == ["events.a.start", "events.a.stop", "events.b.start", "events"]


def test_regex_subscription_has_re_match_semantics(bus):
    sub = bus.subscribe(regex=r"(new|update):observable")
    for t in ["new:observable:url", "update:observable", "delete:observable", "x.new:observable"]:
        bus.publish(t, b"")
    assert [m.topic for m in sub.recv_many(100, timeout=1.0)] == ["new:observable:url", "update:observable"]


def test_pattern_and_regex_together_must_both_match(bus):
    sub = bus.subscribe("a.#", regex=r"a\.b")
    for t in ["a.b", "a.c", "x.a.b"]:
        bus.publish(t, b"")
    assert [m.topic for m in sub.recv_many(10, timeout=1.0)] == ["a.b"]


def test_root_id_filter_selects_one_chain(bus):
    root = uuid.uuid4()
    sub = bus.subscribe(root_id=root)
    bus.publish("t", b"1", root_id=root)
    bus.publish("t", b"2", root_id=uuid.uuid4())
    bus.publish("t", b"3")
    assert [m.payload for m in sub.recv_many(10, timeout=1.0)] == [b"1"]


def test_start_positions_oldest_newest_and_seq(bus):
    seqs = [bus.publish("t", str(i)) for i in range(5)]
    oldest = bus.subscribe(from_="oldest")
    newest = bus.subscribe(from_="newest")
    at = bus.subscribe(from_=seqs[3])
    bus.publish("t", "5")
    assert [m.payload for m in oldest.recv_many(10, timeout=1.0)] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert [m.payload for m in newest.recv_many(10, timeout=1.0)] == [b"5"]
    assert [m.payload for m in at.recv_many(10, timeout=1.0)] == [b"3", b"4", b"5"]


def test_recv_returns_none_after_the_timeout(bus):
    sub = bus.subscribe()
    t0 = time.monotonic()
    assert sub.recv(timeout=0.2) is None
    assert 0.18 <= time.monotonic() - t0 < 2.0
    assert sub.try_recv() is None
    assert sub.recv_many(10) == []


def test_iterating_a_subscriber_yields_messages_in_order(bus):
    sub = bus.subscribe()
    for i in range(3):
        bus.publish("t", str(i))
    it = iter(sub)
    assert [next(it).payload for _ in range(3)] == [b"0", b"1", b"2"]


def test_publish_many_and_recv_many_move_batches(bus):
    sub = bus.subscribe()
    last = bus.publish_many("t", [b"a", "b", bytearray(b"c")])
    assert bus.publish_many("t", []) is None
    assert bus.publish_many("t", (x for x in [b"d"])) == last + 1
    got = sub.recv_many(3, timeout=1.0)
    assert [m.payload for m in got] == [b"a", b"b", b"c"]
    assert [m.payload for m in sub.recv_many(10, timeout=1.0)] == [b"d"]
    assert sub.recv_many(0) == []


def test_publish_many_groups_payloads_and_checks_each_group_first(bus):
    sub = bus.subscribe()
    # More than one group of 1024, all payload types, in order.
    payloads = [f"p{i}".encode() for i in range(2500)] + ["text", bytearray(b"ba"), memoryview(b"mv")]
    last = bus.publish_many("t", payloads, root_id=5)
    got = sub.recv_many(5000, timeout=1.0)
    assert [m.payload for m in got] == [bytes(p) if not isinstance(p, str) else p.encode() for p in payloads]
    assert got[-1].seq == last
    assert all(m.root_id == uuid.UUID(int=5) for m in got)
    assert all(a.seq < b.seq for a, b in zip(got, got[1:]))
    # A group with a payload of the wrong type or too large publishes none of it.
    with pytest.raises(TypeError):
        bus.publish_many("t", [b"ok", 42])
    with pytest.raises(shmbus.FrameTooLarge):
        bus.publish_many("t", [b"ok", b"x" * 5000])
    assert sub.recv_many(10, timeout=0.05) == []
    assert bus.publish_many("t", iter([b"after"])) == last + 1


def test_eviction_is_counted_in_missed(bus_name):
    with shmbus.Bus.create(bus_name, memory_limit=256 << 10, max_frame_size=1024) as bus:
        sub = bus.subscribe()
        n = 5000
        for i in range(n):
            bus.publish("t", b"x" * 200)
        received = len(sub.recv_many(n, timeout=1.0))
        while True:
            more = sub.recv_many(n)
            if not more:
                break
            received += len(more)
        assert sub.missed > 0
        assert received + sub.missed == n
        assert sub.delivered == received
        assert bus.stats()["evicted"] > 0


def test_group_members_share_the_frames(bus):
    a = bus.join_group("enrichers")
    b = bus.join_group("enrichers")
    assert a.group == "enrichers"
    for i in range(100):
        bus.publish("t", str(i))
    got_a = [m.seq for m in a.recv_many(60, timeout=1.0)]
    got_b = [m.seq for m in b.recv_many(1000, timeout=1.0)]
    rest = [m.seq for m in a.recv_many(1000)]
    assert sorted(got_a + got_b + rest) == list(range(got_a[0], got_a[0] + 100))
    assert len(set(got_a + got_b + rest)) == 100
    groups = bus.stats()["groups"]
    assert [(g["name"], g["members"], g["delivered"]) for g in groups] == [("enrichers", 2, 100)]


def test_stats_is_a_dict_with_counters_and_tables(bus):
    sub = bus.subscribe("a.#")
    bus.publish("a.b", b"123")
    sub.recv(timeout=1.0)
    s = bus.stats()
    assert s["name"] == bus.name
    assert s["published"] == 1
    assert s["next_seq"] == 1
    assert 0 < s["keep_ratio"] < 1
    assert s["memory_limit"] <= 1 << 20
    assert s["subscribers"][0]["filter"] == "topic:a.#"
    assert s["subscribers"][0]["delivered"] == 1
    assert s["producers"][0]["published"] == 1


def test_open_or_create_and_open_share_one_bus(bus_name):
    with shmbus.Bus.open_or_create(bus_name, memory_limit=1 << 20) as a, shmbus.Bus.open(bus_name) as b:
        sub = b.subscribe()
        a.publish("t", b"hi")
        assert sub.recv(timeout=1.0).payload == b"hi"
        assert bus_name in shmbus.Bus.list()
        with shmbus.Bus.open_or_create(bus_name, memory_limit=8 << 20) as c:
            assert c.stats()["memory_limit"] <= 1 << 20  # existing bus keeps its settings
        sub.close()


def test_remove_deletes_the_segment(bus_name):
    shmbus.Bus.create(bus_name, memory_limit=1 << 20).close()
    assert bus_name in shmbus.Bus.list()
    shmbus.Bus.remove(bus_name)
    assert bus_name not in shmbus.Bus.list()
    with pytest.raises(shmbus.BusNotFound):
        shmbus.Bus.open(bus_name)


def test_context_managers_close_bus_and_subscriber(bus_name):
    with shmbus.Bus.create(bus_name, memory_limit=1 << 20) as bus:
        with bus.subscribe() as sub:
            assert not sub.closed
            assert len(bus.stats()["subscribers"]) == 1
        assert sub.closed
        assert bus.stats()["subscribers"] == []
        assert not bus.closed
    assert bus.closed
    assert "closed" in repr(bus) and "closed" in repr(sub)


def test_using_a_closed_bus_or_subscriber_raises_closed(bus):
    sub = bus.subscribe()
    sub.close()
    sub.close()  # idempotent
    for call in (sub.recv, sub.try_recv, sub.recv_many, lambda: next(iter(sub)), lambda: sub.missed):
        with pytest.raises(shmbus.Closed):
            call()
    bus.close()
    bus.close()
    for call in (
        lambda: bus.publish("t", b""),
        lambda: bus.publish_many("t", [b""]),
        bus.subscribe,
        lambda: bus.join_group("g"),
        bus.stats,
    ):
        with pytest.raises(shmbus.Closed):
            call()
    assert issubclass(shmbus.Closed, shmbus.Error)


def test_subscriber_outlives_its_closed_bus_handle(bus):
    sub = bus.subscribe()
    with shmbus.Bus.open(bus.name) as other:
        bus.close()
        other.publish("t", b"still here")
        assert sub.recv(timeout=1.0).payload == b"still here"
    sub.close()


def test_reprs_name_the_bus_and_filter(bus):
    sub = bus.join_group("g", "a.#")
    assert bus.name in repr(bus)
    assert "topic:a.#" in repr(sub) and '"g"' in repr(sub)
    bus.publish("a.b", b"x" * 100)
    r = repr(sub.recv(timeout=1.0))
    assert r.startswith("Message(seq=0") and "..." in r
    assert sub.filter == "topic:a.#" and sub.bus_name == bus.name
    assert sub.lag == 0 and sub.next_seq == 1 and sub.abandoned == 0


def test_messages_stay_valid_after_the_subscriber_closes(bus):
    sub = bus.subscribe()
    bus.publish("t", b"keep")
    msg = sub.recv(timeout=1.0)
    sub.close()
    assert msg.payload == b"keep" and msg.topic == "t"


def test_module_exposes_version_and_limits():
    assert shmbus.__version__ == "0.1.0"
    assert shmbus.MAX_TOPIC_LEN == 255
    assert shmbus.MAX_NAME_LEN > 0
    assert sys.modules["shmbus._native"].Bus is shmbus.Bus
