"""Type stubs of ``shmbus._native``, the Rust extension behind ``shmbus``."""

import uuid
from types import TracebackType
from typing import AsyncIterator, Iterable, Iterator, List, Literal, Optional, Type, Union

from typing_extensions import TypedDict, Unpack

__version__: str
MAX_TOPIC_LEN: int
MAX_NAME_LEN: int

_Payload = Union[bytes, bytearray, memoryview, str]
_Id = Union[uuid.UUID, int, None]
_Kind = Literal["event", "log", "alert", "control"]
_EventType = Literal["new", "update", "delete", "other"]
_From = Union[Literal["newest", "oldest"], int, None]
_Wait = Literal["spin_then_park", "spin", "park"]
_Overflow = Literal["evict", "reject", "block"]

# The keyword arguments shared by several methods, each written once: to type
# checkers `**config: Unpack[_Config]` means the same keyword-only arguments
# (each optional, each of its type) as spelling them out.

class _Config(TypedDict, total=False):
    """Keyword arguments of Bus.create and Bus.open_or_create."""

    memory_limit: Optional[int]
    keep_ratio: Optional[float]
    max_frame_size: Optional[int]
    listener_limit: Optional[int]
    producer_limit: Optional[int]
    overflow: Optional[_Overflow]
    block_timeout: Optional[float]
    mode: Optional[int]
    claim_timeout: Optional[float]
    checksum: Optional[bool]
    single_producer: Optional[bool]

class _Meta(TypedDict, total=False):
    """Keyword arguments of Bus.publish and Bus.publish_many: the frame's metadata."""

    kind: Optional[_Kind]
    event_type: Optional[_EventType]
    correlation_id: _Id
    parent_id: _Id
    root_id: _Id

class Error(Exception):
    """Base class of every exception raised by shmbus."""

class BusNotFound(Error, FileNotFoundError):
    """No bus with this name exists."""

    name: str

class BusExists(Error, FileExistsError):
    """A bus with this name already exists."""

    name: str

class ConfigError(Error, ValueError):
    """A configuration value is out of range; names the field and its range."""

    field: str
    reason: str

class FrameTooLarge(Error, ValueError):
    """A payload is larger than the bus's max_frame_size."""

    size: int
    max: int

class BusFull(Error):
    """The bus is full and its overflow policy is reject or block."""

class Incompatible(Error):
    """The segment is not a shmbus segment of this layout version, or is corrupt."""

    name: str
    reason: str

class InvalidName(Error, ValueError):
    """A bus or group name is not acceptable."""

    name: str
    reason: str

class FilterError(Error, ValueError):
    """A topic, topic pattern or regex was rejected."""

class LimitError(Error):
    """A table in the segment is full."""

    what: str
    limit: int

class BusPermissionError(Error, PermissionError):
    """The segment's file mode does not let this process in."""

    name: str

class GroupMismatch(Error, ValueError):
    """Joining a consumer group with a filter different from the group's."""

    group: str
    existing: str
    requested: str

class ProducerConflict(Error):
    """The bus is single-producer and another producer is active."""

    pid: int

class Closed(Error, ValueError):
    """The bus or subscriber was closed."""

class Message:
    """A message received from a bus (a copy of the frame)."""

    @property
    def topic(self) -> str:
        """The topic it was published to."""
    @property
    def payload(self) -> bytes:
        """The payload bytes."""
    @property
    def seq(self) -> int:
        """Bus-wide sequence number."""
    @property
    def timestamp(self) -> float:
        """Publish time, float seconds since the Unix epoch."""
    @property
    def timestamp_ns(self) -> int:
        """Publish time, integer nanoseconds since the Unix epoch."""
    @property
    def kind(self) -> str:
        """"event", "log", "alert" or "control"."""
    @property
    def event_type(self) -> str:
        """"new", "update", "delete" or "other"."""
    @property
    def correlation_id(self) -> Optional[uuid.UUID]:
        """Correlation id, or None."""
    @property
    def parent_id(self) -> Optional[uuid.UUID]:
        """Parent id, or None."""
    @property
    def root_id(self) -> Optional[uuid.UUID]:
        """Root id, or None."""
    @property
    def producer(self) -> int:
        """Process id of the publisher."""
    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
    def json(self) -> object:
        """The payload decoded as JSON."""
    def __len__(self) -> int: ...

class Subscriber:
    """A subscription to a bus, or a member of a consumer group."""

    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, waiting at most timeout seconds (None: forever); None on timeout."""
    def try_recv(self) -> Optional[Message]:
        """The next message if one is ready now, else None."""
    def recv_many(self, max_messages: int = 1024, timeout: Optional[float] = 0.0) -> List[Message]:
        """Up to max_messages messages, waiting at most timeout for the first."""
    def _wait(self, timeout: float) -> bool:
        """Wait until a message is ready and keep it for the next receive."""
    def aiter(self, poll: float = 0.25) -> AsyncIterator[Message]:
        """An asynchronous iterator over the messages."""
    def __aiter__(self) -> AsyncIterator[Message]: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    @property
    def missed(self) -> int:
        """Frames lost to eviction."""
    @property
    def delivered(self) -> int:
        """Messages delivered."""
    @property
    def abandoned(self) -> int:
        """Claims skipped because their producer died."""
    @property
    def lag(self) -> int:
        """Frames published and not looked at yet."""
    @property
    def next_seq(self) -> int:
        """Seq of the next frame to look at."""
    @property
    def group(self) -> Optional[str]:
        """The consumer group, or None."""
    @property
    def bus_name(self) -> str:
        """The bus name."""
    @property
    def filter(self) -> str:
        """A summary of the filter."""
    @property
    def closed(self) -> bool:
        """True once closed."""
    def close(self) -> None:
        """Leave the bus (idempotent)."""
    def __enter__(self) -> "Subscriber": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Bus:
    """A handle on a bus (one shared-memory segment)."""

    @staticmethod
    def create(
        name: str,
        **config: Unpack[_Config],
    ) -> "Bus":
        """Create bus name; BusExists if it exists, ConfigError for a bad setting."""
    @staticmethod
    def open(name: str) -> "Bus":
        """Open the existing bus name; BusNotFound if there is none."""
    @staticmethod
    def open_or_create(
        name: str,
        **config: Unpack[_Config],
    ) -> "Bus":
        """Open bus name, creating it with these settings if it does not exist."""
    @staticmethod
    def remove(name: str) -> None:
        """Remove bus name; BusNotFound if there is none."""
    @staticmethod
    def list() -> List[str]:
        """Names of every bus on this machine."""
    @property
    def name(self) -> str:
        """The bus name."""
    @property
    def closed(self) -> bool:
        """True once closed."""
    def publish(
        self,
        topic: str,
        payload: _Payload,
        **meta: Unpack[_Meta],
    ) -> int:
        """Publish payload to topic; returns its seq."""
    def publish_many(
        self,
        topic: str,
        payloads: Iterable[_Payload],
        **meta: Unpack[_Meta],
    ) -> Optional[int]:
        """Publish every payload to topic, in order; returns the last seq (None if empty).

        Payloads go to the bus in groups of up to 1024, each checked before
        any of it is published: a payload of the wrong type or too large
        raises, and the groups before it stay published.
        """
    def subscribe(
        self,
        pattern: Optional[str] = None,
        *,
        regex: Optional[str] = None,
        root_id: _Id = None,
        from_: _From = None,
        wait: Optional[_Wait] = None,
        spin_us: Optional[float] = None,
    ) -> Subscriber:
        """Subscribe to frames matching every given criterion (all frames if none)."""
    def join_group(
        self,
        group: str,
        pattern: Optional[str] = None,
        *,
        regex: Optional[str] = None,
        root_id: _Id = None,
        from_: Optional[Literal["newest", "oldest"]] = None,
        wait: Optional[_Wait] = None,
        spin_us: Optional[float] = None,
    ) -> Subscriber:
        """Join (creating if needed) a consumer group: each frame goes to one member."""
    def stats(self) -> dict:
        """A snapshot of counters, geometry, subscribers, groups and producers."""
    def reap(self) -> int:
        """Reclaim entries of dead processes now."""
    def close(self) -> None:
        """Release this handle (idempotent)."""
    def __enter__(self) -> "Bus": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
