"""Every error is a clear Python exception; wrong argument types raise TypeError."""

from __future__ import annotations

import pickle

import pytest

import shmbus

ALL = [
    shmbus.BusNotFound,
    shmbus.BusExists,
    shmbus.ConfigError,
    shmbus.FrameTooLarge,
    shmbus.BusFull,
    shmbus.Incompatible,
    shmbus.InvalidName,
    shmbus.FilterError,
    shmbus.LimitError,
    shmbus.BusPermissionError,
    shmbus.GroupMismatch,
    shmbus.ProducerConflict,
    shmbus.Closed,
]


@pytest.mark.parametrize("exc", ALL, ids=lambda e: e.__name__)
def test_every_exception_derives_from_shmbus_error_and_is_documented(exc):
    assert issubclass(exc, shmbus.Error)
    assert issubclass(shmbus.Error, Exception)
    assert exc.__module__ == "shmbus"
    assert exc.__doc__ and len(exc.__doc__) > 20


def test_builtin_bases_let_callers_catch_the_usual_way():
    assert issubclass(shmbus.BusNotFound, FileNotFoundError)
    assert issubclass(shmbus.BusExists, FileExistsError)
    assert issubclass(shmbus.ConfigError, ValueError)
    assert issubclass(shmbus.FilterError, ValueError)
    assert issubclass(shmbus.InvalidName, ValueError)


def test_exceptions_pickle_by_name():
    e = pickle.loads(pickle.dumps(shmbus.BusFull("bus is full")))
    assert type(e) is shmbus.BusFull and str(e) == "bus is full"


def test_opening_a_missing_bus_raises_bus_not_found(bus_name):
    with pytest.raises(shmbus.BusNotFound, match="not found") as info:
        shmbus.Bus.open(bus_name)
    assert info.value.name == bus_name
    with pytest.raises(shmbus.BusNotFound):
        shmbus.Bus.remove(bus_name)


def test_creating_an_existing_bus_raises_bus_exists(bus):
    with pytest.raises(shmbus.BusExists, match="already exists") as info:
        shmbus.Bus.create(bus.name, memory_limit=1 << 20)
    assert info.value.name == bus.name


@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"keep_ratio": 1.5}, "keep_ratio", "(0, 1)"),
        ({"keep_ratio": 0.0}, "keep_ratio", "(0, 1)"),
        ({"memory_limit": 1000}, "memory_limit", "65536"),
        ({"memory_limit": -1}, "memory_limit", "-1"),
        ({"max_frame_size": 0}, "max_frame_size", "1..="),
        ({"listener_limit": 0}, "listener_limit", "1..="),
        ({"producer_limit": 100_000}, "producer_limit", "1..="),
        ({"mode": 0o400}, "mode", "0o600"),
        ({"claim_timeout": 0.0}, "claim_timeout", "1 ms"),
        ({"claim_timeout": -1.0}, "claim_timeout", "non-negative"),
        ({"overflow": "drop"}, "overflow", "evict"),
        ({"block_timeout": 1.0}, "block_timeout", "block"),
    ],
)
def test_config_errors_name_the_field_and_its_range(bus_name, kwargs, field, words):
    with pytest.raises(shmbus.ConfigError) as info:
        shmbus.Bus.create(bus_name, **kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert words in str(info.value)
    assert bus_name not in shmbus.Bus.list()


def test_payload_over_max_frame_size_raises_frame_too_large(bus):
    bus.publish("t", b"x" * 4096)
    with pytest.raises(shmbus.FrameTooLarge, match="4097") as info:
        bus.publish("t", b"x" * 4097)
    assert (info.value.size, info.value.max) == (4097, 4096)


def test_reject_policy_raises_bus_full_while_a_live_subscriber_lags(bus_name):
    with shmbus.Bus.create(bus_name, memory_limit=128 << 10, max_frame_size=1024, overflow="reject") as bus:
        with bus.subscribe():
            with pytest.raises(shmbus.BusFull, match="full"):
                for _ in range(10_000):
                    bus.publish("t", b"x" * 1000)
            assert bus.stats()["rejected"] >= 1


def test_block_policy_raises_bus_full_after_its_timeout(bus_name):
    with shmbus.Bus.create(
        bus_name, memory_limit=128 << 10, max_frame_size=1024, overflow="block", block_timeout=0.05
    ) as bus:
        with bus.subscribe():
            with pytest.raises(shmbus.BusFull):
                for _ in range(10_000):
                    bus.publish("t", b"x" * 1000)


def test_a_foreign_segment_raises_incompatible(bus_name):
    path = f"/dev/shm/shmbus.{bus_name}"
    with open(path, "wb") as f:
        f.write(b"not a bus" * 1000)
    with pytest.raises(shmbus.Incompatible) as info:
        shmbus.Bus.open(bus_name)
    assert info.value.name == bus_name


@pytest.mark.parametrize("name", ["", "a/b", "a..b", "has space", "x" * 300])
def test_bad_bus_names_raise_invalid_name(name):
    with pytest.raises(shmbus.InvalidName):
        shmbus.Bus.create(name, memory_limit=1 << 20)


@pytest.mark.parametrize("topic", ["", "a..b", "a.#", "has space", "x" * 256])
def test_bad_topics_raise_filter_error(bus, topic):
    with pytest.raises(shmbus.FilterError, match="topic"):
        bus.publish(topic, b"")


def test_bad_patterns_and_regexes_raise_filter_error(bus):
    with pytest.raises(shmbus.FilterError, match="pattern"):
        bus.subscribe("a.#.b")
    with pytest.raises(shmbus.FilterError, match="regex"):
        bus.subscribe(regex="(unclosed")


def test_full_subscriber_table_raises_limit_error(bus_name):
    with shmbus.Bus.create(bus_name, memory_limit=1 << 20, listener_limit=1) as bus:
        with bus.subscribe():
            with pytest.raises(shmbus.LimitError) as info:
                bus.subscribe()
            assert info.value.limit == 1


def test_joining_a_group_with_another_filter_raises_group_mismatch(bus):
    with bus.join_group("g", "a.#"):
        with pytest.raises(shmbus.GroupMismatch) as info:
            bus.join_group("g", "b.#")
        assert info.value.group == "g"


def test_bad_group_names_raise_invalid_name(bus):
    with pytest.raises(shmbus.InvalidName):
        bus.join_group("has space")


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.publish("t", 42),
        lambda b: b.publish("t", ["x"]),
        lambda b: b.publish(b"t", b""),
        lambda b: b.publish("t", b"", kind=1),
        lambda b: b.publish("t", b"", correlation_id="abc"),
        lambda b: b.publish("t", b"", root_id=1.5),
        lambda b: b.publish_many("t", 42),
        lambda b: b.publish_many("t", [b"ok", 42]),
        lambda b: b.subscribe(42),
        lambda b: b.subscribe(from_=1.5),
        lambda b: b.subscribe(regex=b"x"),
        lambda b: b.join_group(None),
        lambda b: shmbus.Bus.create("x", memory_limit="64"),
        lambda b: shmbus.Bus.create("x", keep_ratio="0.9"),
        lambda b: shmbus.Bus.create("x", checksum=1),
        lambda b: shmbus.Bus.open(3),
    ],
)
def test_wrong_argument_types_raise_type_error(bus, call):
    with pytest.raises(TypeError):
        call(bus)


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.publish("t", b"", kind="padding"),
        lambda b: b.publish("t", b"", event_type="created"),
        lambda b: b.publish("t", b"", correlation_id=-1),
        lambda b: b.subscribe(from_="middle"),
        lambda b: b.subscribe(wait="sleep"),
        lambda b: b.subscribe().recv(timeout=-1),
        lambda b: b.join_group("g", from_=3),
    ],
)
def test_wrong_argument_values_raise_value_error(bus, call):
    with pytest.raises(ValueError):
        call(bus)


def test_bus_cannot_be_instantiated_directly():
    with pytest.raises(TypeError):
        shmbus.Bus()
