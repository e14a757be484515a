"""shmbus: a lock-free shared-memory event bus.

One shared-memory segment per bus (under ``/dev/shm``); many producers and
many subscribers in many processes; bounded memory with batch eviction of the
oldest frames; MQTT-style topic patterns, regexes and correlation filters;
broadcast subscribers and competing-consumer groups.

>>> import shmbus
>>> bus = shmbus.Bus.create("sensors", memory_limit=64 << 20, keep_ratio=0.9)
>>> sub = bus.subscribe("events.process.#")
>>> seq = bus.publish("events.process.lifecycle", b"payload")
>>> msg = sub.recv(timeout=1.0)
>>> msg.topic, msg.payload, msg.seq == seq
('events.process.lifecycle', b'payload', True)
>>> sub.close(); bus.close(); shmbus.Bus.remove("sensors")

Public names:

- :class:`Bus`, :class:`Subscriber`, :class:`Message` (implemented in Rust,
  in the private module ``shmbus._native``);
- the exceptions, all subclasses of :class:`Error`: :class:`BusNotFound`,
  :class:`BusExists`, :class:`ConfigError`, :class:`FrameTooLarge`,
  :class:`BusFull`, :class:`Incompatible`, :class:`InvalidName`,
  :class:`FilterError`, :class:`LimitError`, :class:`BusPermissionError`,
  :class:`GroupMismatch`, :class:`ProducerConflict`, :class:`Closed`;
- the Yeti-style events layer in :mod:`shmbus.events`, its configuration in
  :mod:`shmbus.config` and the consumer workers in :mod:`shmbus.consumers`
  (``python -m shmbus.consumers events|logs``).
"""

from ._native import (
    MAX_NAME_LEN,
    MAX_TOPIC_LEN,
    Bus,
    BusExists,
    BusFull,
    BusNotFound,
    BusPermissionError,
    Closed,
    ConfigError,
    Error,
    FilterError,
    FrameTooLarge,
    GroupMismatch,
    Incompatible,
    InvalidName,
    LimitError,
    Message,
    ProducerConflict,
    Subscriber,
    __version__,
)

__all__ = [
    "MAX_NAME_LEN",
    "MAX_TOPIC_LEN",
    "Bus",
    "BusExists",
    "BusFull",
    "BusNotFound",
    "BusPermissionError",
    "Closed",
    "ConfigError",
    "Error",
    "FilterError",
    "FrameTooLarge",
    "GroupMismatch",
    "Incompatible",
    "InvalidName",
    "LimitError",
    "Message",
    "ProducerConflict",
    "Subscriber",
    "__version__",
]
