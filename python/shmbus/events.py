"""A Yeti-style events layer on shmbus: message models, a producer and tasks.

For platforms like Yeti whose event bus is Kombu over Redis, with the same
semantics on a shared-memory bus:

- Messages are JSON: ``{"type": "event", "timestamp": ISO-8601 UTC, "event":
  {...}}`` or ``{"type": "log", "timestamp": ..., "log": str | object}``.
  The event fields are Yeti's, so messages from a Yeti producer parse
  unchanged: :class:`ObjectEvent` ``{type, yeti_object}``, :class:`LinkEvent`
  ``{type, source_object, target_object, relationship}`` and
  :class:`TagEvent` ``{type, tagged_object, tag_object}``, with ``type`` one
  of ``new``, ``update``, ``delete``. An object is a dict (or a pydantic
  model, or any object with attributes) with ``root_type`` (``observable``,
  ``entity``, ``indicator``, ``tag``, ...) and, for most kinds, ``type``
  (``url``, ``ipv4``, ``campaign``, ...); a tag object has ``name``.
- Each event has match strings, which tasks' ``acts_on`` regexes are matched
  against with :func:`re.match` semantics (anchored at the start only):
  object events ``"{verb}:{root_type}[:{type}]"`` (``new:observable:url``),
  link events ``"{verb}:link:source:{root_type}[:{type}]"`` and
  ``"{verb}:link:target:..."`` (either may match), tag events
  ``"{verb}:tagged:{tag_name}"``. The verb is the plain value (``new``).
- :data:`producer` (or an :class:`EventProducer` of your own) publishes with
  ``publish_event(event)`` and ``publish_log(log)``, which never block and
  never raise: events go to the ``events`` queue (topic ``events.{verb}``)
  and logs to the ``logs`` queue (topic ``logs``) of the configured bus
  (see :mod:`shmbus.config`).
- :class:`EventTask` and :class:`LogTask` are the base classes of the tasks
  that ``python -m shmbus.consumers events|logs`` runs (see
  :mod:`shmbus.consumers`); :class:`Dispatcher` is the per-message logic.

On the consumer side objects are plain dicts (parsed JSON).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import logging
import re
import threading
from typing import Any, Dict, List, Optional, Pattern, Sequence, Tuple, Union

from ._native import Bus
from .config import EventsConfig, load_events_config

__all__ = [
    "EVENTS_QUEUE",
    "LOGS_QUEUE",
    "Dispatcher",
    "EventMessage",
    "EventProducer",
    "EventTask",
    "EventType",
    "EventTypes",
    "LinkEvent",
    "LogMessage",
    "LogTask",
    "MessageError",
    "MessageType",
    "ObjectEvent",
    "TagEvent",
    "compile_acts_on",
    "get_producer",
    "object_match_string",
    "parse_event",
    "parse_message",
]

logger = logging.getLogger("shmbus.events")

#: Queue (topic prefix and consumer group) of events.
EVENTS_QUEUE = "events"
#: Queue (topic and consumer group) of logs.
LOGS_QUEUE = "logs"


class MessageType(str, enum.Enum):
    """The ``type`` of a message: ``log`` or ``event``."""

    log = "log"
    event = "event"


class EventType(str, enum.Enum):
    """The verb of an event: ``new``, ``update`` or ``delete``."""

    new = "new"
    update = "update"
    delete = "delete"


class MessageError(ValueError):
    """A message or event could not be parsed (bad JSON or a missing field)."""


def _plain(value: Any) -> str:
    """The plain string of a value: an enum's value, never its repr."""
    if isinstance(value, enum.Enum):
        value = value.value
    return str(value)


def _verb(value: Any) -> EventType:
    try:
        return EventType(_plain(value))
    except ValueError:
        raise MessageError(f"event type must be one of new, update, delete; got {_plain(value)!r}") from None


def _get(obj: Any, name: str) -> Any:
    """Field ``name`` of a dict or an object; ``None`` if absent."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def object_match_string(verb: Any, obj: Any, prefix: str = "") -> str:
    """``"{verb}:{prefix}{root_type}[:{type}]"`` for a Yeti object.

    ``obj`` is a dict or an object with attributes; ``:{type}`` is added when
    the object has a (non-``None``) ``type``. Enum values are used plainly.

    >>> object_match_string("new", {"root_type": "observable", "type": "url"})
    'new:observable:url'
    >>> object_match_string(EventType.update, {"root_type": "tag", "name": "x"})
    'update:tag'
    """
    s = f"{_plain(verb)}:{prefix}{_plain(_get(obj, 'root_type'))}"
    kind = _get(obj, "type")
    if kind is not None:
        s += f":{_plain(kind)}"
    return s


def _jsonable(obj: Any) -> Any:
    """A JSON-ready form of a dict, pydantic model, dataclass or plain value."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (datetime.datetime, datetime.date)):
        return _iso(obj) if isinstance(obj, datetime.datetime) else obj.isoformat()
    if hasattr(obj, "model_dump"):  # pydantic v2
        return obj.model_dump(mode="json")
    if hasattr(obj, "dict") and hasattr(obj, "__fields__"):  # pydantic v1
        return _jsonable(obj.dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    return obj


def _iso(ts: datetime.datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, as pydantic writes it."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.timezone.utc)
    return ts.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_ts(raw: Any) -> datetime.datetime:
    if isinstance(raw, datetime.datetime):
        ts = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            ts = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise MessageError(f"timestamp {raw!r} is not ISO-8601") from None
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        ts = datetime.datetime.fromtimestamp(raw, datetime.timezone.utc)
    else:
        raise MessageError(f"timestamp {raw!r} is not ISO-8601")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=datetime.timezone.utc)
    return ts.astimezone(datetime.timezone.utc)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def compile_acts_on(acts_on: Union[str, Pattern[str]]) -> Pattern[str]:
    """Compile a task's ``acts_on`` (surrounding whitespace stripped).

    Raises :class:`re.error` if it is not a valid regex.
    """
    if isinstance(acts_on, re.Pattern):
        return acts_on
    return re.compile(str(acts_on).strip())


def _matches(acts_on: Union[str, Pattern[str]], strings: Sequence[str]) -> bool:
    pattern = compile_acts_on(acts_on)
    return any(pattern.match(s) is not None for s in strings)


@dataclasses.dataclass
class ObjectEvent:
    """An object was created, updated or deleted: ``{type, yeti_object}``."""

    type: EventType
    yeti_object: Any

    def __post_init__(self) -> None:
        self.type = _verb(self.type)

    @property
    def event_message(self) -> str:
        """The match string, ``"{verb}:{root_type}[:{type}]"``."""
        return object_match_string(self.type, self.yeti_object)

    @property
    def match_strings(self) -> List[str]:
        """The strings ``acts_on`` is matched against (one)."""
        return [self.event_message]

    def match(self, acts_on: Union[str, Pattern[str]]) -> bool:
        """Whether ``acts_on`` matches (``re.match``: anchored at the start)."""
        return _matches(acts_on, self.match_strings)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of this event."""
        return {"type": self.type.value, "yeti_object": _jsonable(self.yeti_object)}


@dataclasses.dataclass
class LinkEvent:
    """A link between two objects: ``{type, source_object, target_object, relationship}``."""

    type: EventType
    source_object: Any
    target_object: Any
    relationship: Any = None

    def __post_init__(self) -> None:
        self.type = _verb(self.type)

    @property
    def link_source_event(self) -> str:
        """``"{verb}:link:source:{root_type}[:{type}]"`` of the source object."""
        return object_match_string(self.type, self.source_object, "link:source:")

    @property
    def link_target_event(self) -> str:
        """``"{verb}:link:target:{root_type}[:{type}]"`` of the target object."""
        return object_match_string(self.type, self.target_object, "link:target:")

    @property
    def match_strings(self) -> List[str]:
        """The strings ``acts_on`` is matched against: source, then target."""
        return [self.link_source_event, self.link_target_event]

    def match(self, acts_on: Union[str, Pattern[str]]) -> bool:
        """Whether ``acts_on`` matches the source or the target string."""
        return _matches(acts_on, self.match_strings)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of this event."""
        return {
            "type": self.type.value,
            "source_object": _jsonable(self.source_object),
            "target_object": _jsonable(self.target_object),
            "relationship": _jsonable(self.relationship),
        }


@dataclasses.dataclass
class TagEvent:
    """An object was tagged: ``{type, tagged_object, tag_object}``."""

    type: EventType
    tagged_object: Any
    tag_object: Any

    def __post_init__(self) -> None:
        self.type = _verb(self.type)

    @property
    def tag_message(self) -> str:
        """``"{verb}:tagged:{tag_name}"``."""
        return f"{self.type.value}:tagged:{_plain(_get(self.tag_object, 'name'))}"

    @property
    def match_strings(self) -> List[str]:
        """The strings ``acts_on`` is matched against (one)."""
        return [self.tag_message]

    def match(self, acts_on: Union[str, Pattern[str]]) -> bool:
        """Whether ``acts_on`` matches the tag string."""
        return _matches(acts_on, self.match_strings)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of this event."""
        return {
            "type": self.type.value,
            "tagged_object": _jsonable(self.tagged_object),
            "tag_object": _jsonable(self.tag_object),
        }


#: Any event.
EventTypes = Union[ObjectEvent, LinkEvent, TagEvent]


@dataclasses.dataclass
class LogMessage:
    """A log message: ``{"type": "log", "timestamp": ..., "log": str | object}``."""

    log: Union[str, Dict[str, Any]]
    timestamp: datetime.datetime = dataclasses.field(default_factory=_now)
    type: MessageType = dataclasses.field(default=MessageType.log, init=False)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of this message."""
        return {"type": "log", "timestamp": _iso(self.timestamp), "log": _jsonable(self.log)}

    def to_json(self) -> str:
        """The message serialized as JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclasses.dataclass
class EventMessage:
    """An event message: ``{"type": "event", "timestamp": ..., "event": {...}}``."""

    event: EventTypes
    timestamp: datetime.datetime = dataclasses.field(default_factory=_now)
    type: MessageType = dataclasses.field(default=MessageType.event, init=False)

    def match(self, acts_on: Union[str, Pattern[str]]) -> bool:
        """Whether a task with this ``acts_on`` handles this event."""
        return self.event.match(acts_on)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of this message."""
        return {"type": "event", "timestamp": _iso(self.timestamp), "event": self.event.to_dict()}

    def to_json(self) -> str:
        """The message serialized as JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def parse_event(data: Any) -> EventTypes:
    """An event from its dict (or from an event object: ours, or a Yeti pydantic model).

    The kind is told by the fields: ``yeti_object`` (object event),
    ``source_object`` and ``target_object`` (link event), ``tagged_object``
    and ``tag_object`` (tag event). Raises :class:`MessageError`.
    """
    if isinstance(data, (ObjectEvent, LinkEvent, TagEvent)):
        return data
    if not isinstance(data, dict):
        if hasattr(data, "model_dump") or dataclasses.is_dataclass(data):
            data = _jsonable(data)
        else:
            raise MessageError(f"an event must be a JSON object, got {type(data).__name__}")
    if "type" not in data:
        raise MessageError("event has no 'type'")
    if "yeti_object" in data:
        return ObjectEvent(type=data["type"], yeti_object=data["yeti_object"])
    if "source_object" in data and "target_object" in data:
        return LinkEvent(
            type=data["type"],
            source_object=data["source_object"],
            target_object=data["target_object"],
            relationship=data.get("relationship"),
        )
    if "tagged_object" in data and "tag_object" in data:
        return TagEvent(type=data["type"], tagged_object=data["tagged_object"], tag_object=data["tag_object"])
    raise MessageError(f"unknown event shape with fields {sorted(data)}")


def parse_message(data: Union[bytes, bytearray, memoryview, str, Dict[str, Any]]) -> Union[EventMessage, LogMessage]:
    """Parse a serialized message (JSON bytes/str, or its dict).

    Raises :class:`MessageError` if it is not JSON or not a valid message.

    >>> m = parse_message(b'{"type":"log","timestamp":"2024-05-01T12:00:00Z","log":"hi"}')
    >>> m.log, m.timestamp.year
    ('hi', 2024)
    """
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        try:
            data = json.loads(bytes(data) if isinstance(data, memoryview) else data)
        except (ValueError, UnicodeDecodeError) as e:
            raise MessageError(f"message is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise MessageError(f"a message must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    ts = _parse_ts(data["timestamp"]) if data.get("timestamp") is not None else _now()
    if kind == "event":
        if "event" not in data:
            raise MessageError("event message has no 'event'")
        return EventMessage(event=parse_event(data["event"]), timestamp=ts)
    if kind == "log":
        if "log" not in data:
            raise MessageError("log message has no 'log'")
        log = data["log"]
        if not isinstance(log, (str, dict)):
            raise MessageError(f"'log' must be a string or an object, got {type(log).__name__}")
        return LogMessage(log=log, timestamp=ts)
    raise MessageError(f"message type must be 'event' or 'log', got {kind!r}")


class EventProducer:
    """Publishes events and logs to the ``events``/``logs`` queues of a bus.

    The bus is opened (or created with the configured ``memory_limit`` and
    ``keep_ratio``) on first use. ``publish_event`` and ``publish_log`` never
    block and never raise: a failure is logged (logger ``shmbus.events``) and
    the call returns ``None``; on success they return the frame's seq.
    """

    def __init__(self, config: Optional[EventsConfig] = None, *, bus: Optional[str] = None) -> None:
        """Use ``config`` (default: :func:`shmbus.config.load_events_config`), or bus ``bus``."""
        self._config = config
        self._bus_name = bus
        self._bus: Optional[Bus] = None
        self._lock = threading.Lock()
        self._failed_open = False

    @property
    def config(self) -> EventsConfig:
        """The settings in use (loaded on first access)."""
        if self._config is None:
            self._config = load_events_config()
            if self._bus_name is not None:
                self._config = dataclasses.replace(self._config, bus=self._bus_name)
        elif self._bus_name is not None and self._config.bus != self._bus_name:
            self._config = dataclasses.replace(self._config, bus=self._bus_name)
        return self._config

    def _get_bus(self) -> Optional[Bus]:
        bus = self._bus
        if bus is not None:
            return bus
        with self._lock:
            if self._bus is None:
                cfg = self.config
                try:
                    self._bus = Bus.open_or_create(cfg.bus, **cfg.bus_kwargs())
                    self._failed_open = False
                except Exception:
                    # Log the first failure in full, later ones briefly.
                    if not self._failed_open:
                        logger.exception("cannot open event bus %r; dropping messages until it opens", cfg.bus)
                    self._failed_open = True
                    return None
            return self._bus

    def publish_event(self, event: Any) -> Optional[int]:
        """Publish ``event`` (an event, its dict, or a Yeti pydantic event) to the ``events`` queue."""
        try:
            parsed = parse_event(event)
            message = EventMessage(event=parsed)
            payload = message.to_json()
            bus = self._get_bus()
            if bus is None:
                return None
            verb = parsed.type.value
            return bus.publish(f"{EVENTS_QUEUE}.{verb}", payload, kind="event", event_type=verb)
        except Exception:
            logger.exception("Error publishing event")
            return None

    def publish_log(self, log: Union[str, Dict[str, Any]]) -> Optional[int]:
        """Publish ``log`` (a string or a JSON-ready dict) to the ``logs`` queue."""
        try:
            if not isinstance(log, (str, dict)):
                raise TypeError(f"a log must be a str or a dict, not {type(log).__name__}")
            payload = LogMessage(log=log).to_json()
            bus = self._get_bus()
            if bus is None:
                return None
            return bus.publish(LOGS_QUEUE, payload, kind="log")
        except Exception:
            logger.exception("Error publishing log")
            return None

    def close(self) -> None:
        """Release the bus handle (it is reopened if the producer is used again)."""
        with self._lock:
            if self._bus is not None:
                self._bus.close()
                self._bus = None

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        bus = self._bus_name or (self._config.bus if self._config else "<from config>")
        return f"<shmbus.events.EventProducer bus={bus!r}>"


_producer: Optional[EventProducer] = None
_producer_lock = threading.Lock()


def get_producer() -> EventProducer:
    """The process-wide producer (``shmbus.events.producer``), made on first use."""
    global _producer
    with _producer_lock:
        if _producer is None:
            _producer = EventProducer()
        return _producer


def __getattr__(name: str) -> Any:
    # `from shmbus.events import producer` makes the shared producer lazily,
    # so importing this module reads no configuration and opens no bus.
    if name == "producer":
        return get_producer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Task:
    """What :class:`EventTask` and :class:`LogTask` share: ``enabled``, ``name``, ``abstract``."""

    #: Whether the task runs.
    enabled: bool = True
    #: Name used in logs (default: the class name).
    name: str = ""
    #: True on classes that are only bases for other tasks.
    abstract: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if _Task in cls.__bases__:
            return  # EventTask and LogTask themselves: abstract, unnamed
        if "abstract" not in cls.__dict__:
            cls.abstract = False
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__


class EventTask(_Task):
    """Base class of tasks run on events by ``python -m shmbus.consumers events``.

    Subclass it in a task module, set ``acts_on`` (a regex matched with
    :func:`re.match` semantics against the event's match strings; surrounding
    whitespace is stripped; ``""``, the default, matches every event) and
    implement :meth:`run`. ``enabled = False`` skips the task. ``name``
    defaults to the class name. Set ``abstract = True`` in a subclass meant
    only as a base; it is then not instantiated.
    """

    #: Regex the event's match strings are matched against (``re.match``).
    acts_on: str = ""

    def run(self, message: EventMessage) -> None:
        """Handle one event message (``message.event`` is the event)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} acts_on={self.acts_on!r} enabled={self.enabled}>"


class LogTask(_Task):
    """Base class of tasks run on every log message by ``python -m shmbus.consumers logs``.

    Implement :meth:`run`; ``enabled``, ``name`` and ``abstract`` as in
    :class:`EventTask`.
    """

    def run(self, message: LogMessage) -> None:
        """Handle one log message (``message.log`` is the string or dict)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} enabled={self.enabled}>"


class Dispatcher:
    """Runs the tasks on each message of one queue (``events`` or ``logs``).

    For each message, the enabled tasks that match run in registration
    order; one task raising is logged and does not stop the others. A task
    whose ``acts_on`` is not a valid regex is reported once, when the
    dispatcher is made, and skipped. A message that does not parse is logged
    and dropped (never retried).
    """

    def __init__(self, queue: str, tasks: Sequence[Union[EventTask, LogTask]], *, report_invalid: bool = True) -> None:
        """Prepare ``tasks`` for ``queue``; ``report_invalid`` logs bad ``acts_on`` at ERROR (else DEBUG)."""
        if queue not in (EVENTS_QUEUE, LOGS_QUEUE):
            raise ValueError(f"queue must be {EVENTS_QUEUE!r} or {LOGS_QUEUE!r}, got {queue!r}")
        self.queue = queue
        self.tasks: List[Tuple[Union[EventTask, LogTask], Optional[Pattern[str]]]] = []
        #: Tasks skipped because their ``acts_on`` is invalid, with the reason.
        self.invalid: List[Tuple[Union[EventTask, LogTask], str]] = []
        level = logging.ERROR if report_invalid else logging.DEBUG
        for task in tasks:
            if queue == EVENTS_QUEUE:
                try:
                    pattern: Optional[Pattern[str]] = compile_acts_on(getattr(task, "acts_on", "") or "")
                except (re.error, TypeError) as e:
                    reason = f"invalid acts_on {getattr(task, 'acts_on', None)!r}: {e}"
                    logger.log(level, "Skipping task %s: %s", _task_name(task), reason)
                    self.invalid.append((task, reason))
                    continue
            else:
                pattern = None
            self.tasks.append((task, pattern))

    def handle(self, payload: Union[bytes, str, Dict[str, Any]]) -> int:
        """Parse one message and run the tasks on it; returns how many ran."""
        try:
            message = parse_message(payload)
        except (MessageError, KeyError, TypeError, ValueError) as e:
            logger.error("Dropping a message in the %s queue that does not parse: %s", self.queue, e)
            return 0
        wanted = MessageType.event if self.queue == EVENTS_QUEUE else MessageType.log
        if message.type != wanted:
            logger.warning("Ignoring message type <%s> in %s queue.", message.type.value, self.queue)
            return 0
        ran = 0
        for task, pattern in self.tasks:
            if not getattr(task, "enabled", True):
                continue
            if pattern is not None:
                assert isinstance(message, EventMessage)
                try:
                    strings = message.event.match_strings
                except Exception:
                    logger.exception("Cannot compute the match strings of %r", message.event)
                    return ran
                logger.debug("Matching %r against %s", pattern.pattern, " and ".join(strings))
                if not any(pattern.match(s) for s in strings):
                    continue
            logger.info("Running task %s", _task_name(task))
            try:
                task.run(message)  # type: ignore[arg-type]
            except Exception:
                logger.exception("Task %s failed on a message in the %s queue", _task_name(task), self.queue)
            ran += 1
        return ran


def _task_name(task: Any) -> str:
    return getattr(task, "name", "") or type(task).__name__
