"""The Yeti-style events layer: models, match strings, acts_on, producer, dispatcher."""

from __future__ import annotations

import datetime
import enum
import json
import logging

import pytest

import shmbus
from shmbus import events
from shmbus.config import EventsConfig
from shmbus.events import (
    Dispatcher,
    EventMessage,
    EventProducer,
    EventTask,
    EventType,
    LinkEvent,
    LogMessage,
    LogTask,
    MessageError,
    ObjectEvent,
    TagEvent,
    parse_message,
)

URL = {"root_type": "observable", "type": "url", "value": "http://x"}
CAMPAIGN = {"root_type": "entity", "type": "campaign", "name": "c"}
TAG = {"root_type": "tag", "name": "malware"}


class ObservableType(str, enum.Enum):
    url = "url"


class FakeModel:
    """Stands in for a pydantic model: attributes plus model_dump()."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def model_dump(self, mode="python"):
        return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in self.__dict__.items()}


def test_object_event_match_string_is_verb_root_type_and_type():
    assert ObjectEvent(type="new", yeti_object=URL).event_message == "new:observable:url"
    assert ObjectEvent(type=EventType.update, yeti_object=CAMPAIGN).event_message == "update:entity:campaign"
    assert ObjectEvent(type="delete", yeti_object=TAG).event_message == "delete:tag"


def test_verbs_and_types_are_plain_values_never_enum_reprs():
    model = FakeModel(root_type="observable", type=ObservableType.url)
    s = ObjectEvent(type=EventType.new, yeti_object=model).event_message
    assert s == "new:observable:url"
    assert "EventType" not in s and "ObservableType" not in s


def test_link_event_has_source_and_target_strings():
    e = LinkEvent(type="new", source_object=URL, target_object=CAMPAIGN, relationship={"type": "uses"})
    assert e.match_strings == ["new:link:source:observable:url", "new:link:target:entity:campaign"]
    assert e.match("new:link:target:entity")
    assert e.match("new:link:source:observable:url")
    assert not e.match("new:link:source:entity")


def test_tag_event_string_names_the_tag():
    e = TagEvent(type="new", tagged_object=URL, tag_object=TAG)
    assert e.tag_message == "new:tagged:malware"
    assert e.match("new:tagged:mal")


@pytest.mark.parametrize(
    "acts_on, matches",
    [
        ("", True),
        ("new:observable", True),  # prefix: anchored at the start only
        ("new:observable:url", True),
        ("  new:observable:url  ", True),  # surrounding whitespace stripped
        ("(new|update):observable:(url|ipv4)", True),
        ("observable", False),  # not a search: must match at the start
        (".*url", True),
        ("new:observable:url$", True),
        ("new:observable:ur$", False),
        ("update:observable", False),
        ("new:entity", False),
    ],
)
def test_acts_on_has_re_match_prefix_semantics(acts_on, matches):
    assert ObjectEvent(type="new", yeti_object=URL).match(acts_on) is matches


def test_unknown_verb_is_rejected():
    with pytest.raises(MessageError, match="new, update, delete"):
        ObjectEvent(type="created", yeti_object=URL)


def test_event_message_serializes_to_yetis_json_shape():
    ts = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    m = EventMessage(event=ObjectEvent(type="new", yeti_object=URL), timestamp=ts)
    assert json.loads(m.to_json()) == {
        "type": "event",
        "timestamp": "2024-05-01T12:00:00.123456Z",
        "event": {"type": "new", "yeti_object": URL},
    }
    log = LogMessage(log={"msg": "hi"}, timestamp=ts)
    assert json.loads(log.to_json()) == {"type": "log", "timestamp": "2024-05-01T12:00:00.123456Z", "log": {"msg": "hi"}}


def test_default_timestamps_are_utc_now():
    m = LogMessage(log="x")
    assert m.timestamp.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - m.timestamp).total_seconds()) < 5
    assert json.loads(m.to_json())["timestamp"].endswith("Z")


def test_messages_from_a_yeti_producer_parse_unchanged():
    # As Yeti's pydantic EventMessage.model_dump_json() writes them.
    yeti = (
        '{"type":"event","timestamp":"2024-05-01T12:00:00.5Z","event":{"type":"new","source_object":'
        '{"root_type":"observable","type":"ipv4","value":"1.2.3.4","tags":{}},"target_object":'
        '{"root_type":"indicator","type":"regex","name":"r"},"relationship":{"type":"matches","source":"a",'
        '"target":"b","description":""}}}'
    )
    m = parse_message(yeti)
    assert isinstance(m, EventMessage) and isinstance(m.event, LinkEvent)
    assert m.event.match_strings == ["new:link:source:observable:ipv4", "new:link:target:indicator:regex"]
    assert m.timestamp == datetime.datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=datetime.timezone.utc)
    tag = parse_message(
        b'{"type":"event","timestamp":"2024-05-01T12:00:00+00:00","event":{"type":"update",'
        b'"tagged_object":{"root_type":"entity","type":"malware"},"tag_object":{"root_type":"tag","name":"apt"}}}'
    )
    assert tag.event.tag_message == "update:tagged:apt"
    log = parse_message('{"type":"log","timestamp":"2024-05-01T12:00:00Z","log":"started"}')
    assert isinstance(log, LogMessage) and log.log == "started"


def test_round_trip_through_json_keeps_every_event_kind():
    for event in [
        ObjectEvent(type="new", yeti_object=URL),
        LinkEvent(type="update", source_object=URL, target_object=CAMPAIGN, relationship={"type": "r"}),
        TagEvent(type="delete", tagged_object=CAMPAIGN, tag_object=TAG),
    ]:
        again = parse_message(EventMessage(event=event).to_json())
        assert again.event == event


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"type":"other"}', b'{"type":"event"}', b'{"type":"event","event":{"type":"new"}}',
     b'{"type":"event","event":{"type":"bogus","yeti_object":{}}}', b'{"type":"log","log":5}',
     b'{"type":"log","log":"x","timestamp":"yesterday"}', b"\xff\xfe"],
)
def test_malformed_messages_raise_message_error(raw):
    with pytest.raises(MessageError):
        parse_message(raw)


def test_pydantic_like_objects_are_serialized_with_model_dump():
    model = FakeModel(root_type="observable", type=ObservableType.url, value="http://y")
    m = EventMessage(event=ObjectEvent(type=EventType.new, yeti_object=model))
    assert json.loads(m.to_json())["event"]["yeti_object"] == {"root_type": "observable", "type": "url", "value": "http://y"}


@pytest.fixture
def producer(bus_name):
    p = EventProducer(EventsConfig(bus=bus_name, memory_limit=64, keep_ratio=0.9))
    yield p
    p.close()


def test_producer_publishes_events_and_logs_to_their_queues(producer, bus_name):
    assert producer.publish_log("boot") is not None  # creates the bus
    with shmbus.Bus.open(bus_name) as bus:
        evs = bus.subscribe("events.#")
        logs = bus.subscribe("logs.#")
        seq = producer.publish_event(ObjectEvent(type=EventType.new, yeti_object=URL))
        producer.publish_event({"type": "update", "tagged_object": URL, "tag_object": TAG})
        producer.publish_log({"msg": "hello"})
        e1, e2 = evs.recv_many(10, timeout=1.0)
        assert (e1.seq, e1.topic, e1.kind, e1.event_type) == (seq, "events.new", "event", "new")
        assert e2.topic == "events.update"
        assert parse_message(e1.payload).event.event_message == "new:observable:url"
        (log,) = logs.recv_many(10, timeout=1.0)
        assert (log.topic, log.kind) == ("logs", "log")
        assert parse_message(log.payload).log == {"msg": "hello"}
        assert bus.stats()["memory_limit"] <= 64 << 20
        evs.close()
        logs.close()


def test_producer_never_raises_into_the_caller(producer, caplog):
    with caplog.at_level(logging.ERROR, logger="shmbus.events"):
        assert producer.publish_event({"type": "new"}) is None
        assert producer.publish_event(object()) is None
        assert producer.publish_log(12345) is None  # type: ignore[arg-type]
        assert producer.publish_log("x" * 200_000) is None  # larger than max_frame_size
    assert caplog.text.count("Error publishing") == 4
    broken = EventProducer(EventsConfig(bus="bad/name"))
    with caplog.at_level(logging.ERROR, logger="shmbus.events"):
        assert broken.publish_log("x") is None
        assert broken.publish_event(ObjectEvent(type="new", yeti_object=URL)) is None
    assert "cannot open event bus" in caplog.text


def test_module_level_producer_is_created_lazily_from_the_config(monkeypatch, bus_name):
    monkeypatch.setenv("SHMBUS_EVENTS_BUS", bus_name)
    monkeypatch.setattr(events, "_producer", None)
    from shmbus.events import producer

    assert producer is events.get_producer()
    assert producer.config.bus == bus_name
    assert producer.publish_log("x") is not None
    producer.close()


class Recorder:
    def __init__(self):
        self.calls = []


def make_task(base, acts_on="", name="t", calls=None, fail=False, enabled=True):
    class T(base):
        def run(self, message):
            calls.append(name)
            if fail:
                raise RuntimeError(f"{name} failed")

    T.acts_on = acts_on
    T.name = name
    T.enabled = enabled
    return T()


def test_matching_tasks_run_in_registration_order_and_a_failure_does_not_stop_the_others(caplog):
    calls = []
    tasks = [
        make_task(EventTask, "new:observable", "first", calls, fail=True),
        make_task(EventTask, "new:entity", "skipped", calls),
        make_task(EventTask, "", "second", calls),
        make_task(EventTask, "new:observable:url", "disabled", calls, enabled=False),
        make_task(EventTask, "(new|update):observable:url", "third", calls),
    ]
    d = Dispatcher("events", tasks)
    payload = EventMessage(event=ObjectEvent(type="new", yeti_object=URL)).to_json()
    with caplog.at_level(logging.INFO, logger="shmbus.events"):
        assert d.handle(payload) == 3
    assert calls == ["first", "second", "third"]
    assert "first failed" in caplog.text


def test_invalid_acts_on_is_reported_once_and_that_task_is_skipped(caplog):
    calls = []
    with caplog.at_level(logging.ERROR, logger="shmbus.events"):
        d = Dispatcher("events", [make_task(EventTask, "(", "broken", calls), make_task(EventTask, "", "ok", calls)])
        for _ in range(3):
            d.handle(EventMessage(event=ObjectEvent(type="new", yeti_object=URL)).to_json())
    assert calls == ["ok"] * 3
    assert caplog.text.count("invalid acts_on") == 1
    assert [t.name for t, _ in d.invalid] == ["broken"]


def test_unparseable_messages_are_logged_and_dropped(caplog):
    calls = []
    d = Dispatcher("events", [make_task(EventTask, "", "t", calls)])
    with caplog.at_level(logging.ERROR, logger="shmbus.events"):
        assert d.handle(b"{broken") == 0
        assert d.handle(b'{"type":"event","event":{"type":"new"}}') == 0
    assert calls == []
    assert caplog.text.count("does not parse") == 2


def test_log_tasks_get_every_log_message_and_ignore_events(caplog):
    calls = []
    d = Dispatcher("logs", [make_task(LogTask, name="a", calls=calls), make_task(LogTask, name="b", calls=calls)])
    assert d.handle(LogMessage(log="one").to_json()) == 2
    assert d.handle(LogMessage(log={"k": 1}).to_json()) == 2
    with caplog.at_level(logging.WARNING, logger="shmbus.events"):
        assert d.handle(EventMessage(event=ObjectEvent(type="new", yeti_object=URL)).to_json()) == 0
    assert calls == ["a", "b", "a", "b"]
    assert "Ignoring message type <event> in logs queue" in caplog.text


def test_link_event_task_runs_if_either_end_matches():
    calls = []
    d = Dispatcher("events", [make_task(EventTask, "new:link:target:entity:campaign", "t", calls)])
    e = LinkEvent(type="new", source_object=URL, target_object=CAMPAIGN, relationship={})
    assert d.handle(EventMessage(event=e).to_json()) == 1


def test_task_base_classes_name_themselves_and_default_to_match_everything():
    class Enrich(EventTask):
        def run(self, message):
            pass

    t = Enrich()
    assert (t.name, t.acts_on, t.enabled, Enrich.abstract, EventTask.abstract) == ("Enrich", "", True, False, True)
    assert "Enrich" in repr(t)
    with pytest.raises(NotImplementedError):
        EventTask().run(EventMessage(event=ObjectEvent(type="new", yeti_object=URL)))
