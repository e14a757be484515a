"""Configuration of the Yeti-style events layer (:mod:`shmbus.events`).

Settings come from the ``[events]`` section of a TOML file and from the
environment; the environment wins. The rules are Yeti's:

- ``bus`` (``$SHMBUS_EVENTS_BUS``): the bus name, default ``yeti``;
- ``memory_limit`` (``$SHMBUS_EVENTS_MEMORY_LIMIT``): in MiB, default 64;
  anything below 64 (or not a number) becomes 64;
- ``keep_ratio`` (``$SHMBUS_EVENTS_KEEP_RATIO``): default 0.9; anything
  outside the open interval (0, 1) (or not a number) becomes 0.9.

Every fallback is logged (logger ``shmbus.config``, level WARNING). The TOML
file is the ``path`` argument, else ``$SHMBUS_CONFIG`` if set; without one,
only the environment and the defaults apply.

>>> cfg = load_events_config(env={"SHMBUS_EVENTS_MEMORY_LIMIT": "16"})
>>> cfg.memory_limit, cfg.memory_limit_bytes
(64, 67108864)
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_BUS",
    "DEFAULT_KEEP_RATIO",
    "DEFAULT_MEMORY_LIMIT_MIB",
    "EventsConfig",
    "load_events_config",
]

logger = logging.getLogger("shmbus.config")

#: Bus name used by the events layer unless configured.
DEFAULT_BUS = "yeti"
#: Default and minimum ``memory_limit``, in MiB.
DEFAULT_MEMORY_LIMIT_MIB = 64
#: Default ``keep_ratio``.
DEFAULT_KEEP_RATIO = 0.9

ENV_BUS = "SHMBUS_EVENTS_BUS"
ENV_MEMORY_LIMIT = "SHMBUS_EVENTS_MEMORY_LIMIT"
ENV_KEEP_RATIO = "SHMBUS_EVENTS_KEEP_RATIO"
ENV_CONFIG = "SHMBUS_CONFIG"


@dataclass(frozen=True)
class EventsConfig:
    """The resolved settings of the events layer (after every fallback)."""

    #: Name of the bus carrying the ``events`` and ``logs`` queues.
    bus: str = DEFAULT_BUS
    #: Size of the bus in MiB (at least 64).
    memory_limit: int = DEFAULT_MEMORY_LIMIT_MIB
    #: Share of the data an eviction keeps, in (0, 1).
    keep_ratio: float = DEFAULT_KEEP_RATIO

    @property
    def memory_limit_bytes(self) -> int:
        """``memory_limit`` in bytes, as :meth:`shmbus.Bus.create` wants it."""
        return self.memory_limit * 1024 * 1024

    def bus_kwargs(self) -> dict:
        """Keyword arguments for :meth:`shmbus.Bus.open_or_create`."""
        return {"memory_limit": self.memory_limit_bytes, "keep_ratio": self.keep_ratio}


def _number(raw: Any, parsers: "tuple[Callable[[str], Union[int, float]], ...]") -> Union[int, float, None]:
    """``raw`` as a number: an int or float as is, a string (stripped) through
    the first of ``parsers`` that takes it; None for a bool or anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return raw
    if isinstance(raw, str):
        for parse in parsers:
            try:
                return parse(raw.strip())
            except ValueError:
                pass
    return None


def _fallback(key: str, raw: Any, source: str, problem: str, default: Any) -> Any:
    """Log that ``events.<key>`` ``raw`` (from ``source``) has ``problem``; return ``default``."""
    logger.warning("events.%s <%r> (from %s) %s; falling back to %r", key, raw, source, problem, default)
    return default


def _memory_limit(raw: Any, source: str) -> int:
    number = _number(raw, (int, float))
    if isinstance(number, float):
        number = int(number) if math.isfinite(number) else None
    if number is None:
        return _fallback("memory_limit", raw, source, "is not a number of MiB", DEFAULT_MEMORY_LIMIT_MIB)
    if number < DEFAULT_MEMORY_LIMIT_MIB:
        problem = f"is invalid. Must be >= {DEFAULT_MEMORY_LIMIT_MIB}"
        return _fallback("memory_limit", raw, source, problem, DEFAULT_MEMORY_LIMIT_MIB)
    return number


def _keep_ratio(raw: Any, source: str) -> float:
    number = _number(raw, (float,))
    value = None if number is None else float(number)
    if value is None or not (0.0 < value < 1.0):
        return _fallback("keep_ratio", raw, source, "is invalid. Must be > 0 and < 1", DEFAULT_KEEP_RATIO)
    return value


def _bus_name(raw: Any, source: str) -> str:
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    return _fallback("bus", raw, source, "is not a bus name", DEFAULT_BUS)


def _read_toml(path: Union[str, "os.PathLike[str]"]) -> Mapping[str, Any]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    section = data.get("events", {})
    if not isinstance(section, dict):
        logger.warning("[events] in %s is not a table; ignoring it", path)
        return {}
    return section


def load_events_config(
    path: Union[str, "os.PathLike[str]", None] = None,
    env: Optional[Mapping[str, str]] = None,
) -> EventsConfig:
    """Resolve the events settings from ``path`` (TOML, ``[events]``) and ``env``.

    ``path`` defaults to ``$SHMBUS_CONFIG`` (no file if unset); ``env``
    defaults to ``os.environ``. The environment wins over the file; every
    invalid value falls back to its default with a warning on the
    ``shmbus.config`` logger. A missing or unreadable file raises ``OSError``
    and a malformed one ``tomllib.TOMLDecodeError`` (a ``ValueError``).
    """
    if env is None:
        env = os.environ
    if path is None:
        path = env.get(ENV_CONFIG) or None
    section: Mapping[str, Any] = _read_toml(path) if path is not None else {}
    where = f"[events] in {os.fspath(path)}" if path is not None else ""

    def pick(key: str, env_key: str) -> "Optional[tuple[Any, str]]":
        if env_key in env:
            return env[env_key], f"${env_key}"
        if key in section:
            return section[key], where
        return None

    picked = pick("bus", ENV_BUS)
    bus = _bus_name(*picked) if picked else DEFAULT_BUS
    picked = pick("memory_limit", ENV_MEMORY_LIMIT)
    memory_limit = _memory_limit(*picked) if picked else DEFAULT_MEMORY_LIMIT_MIB
    picked = pick("keep_ratio", ENV_KEEP_RATIO)
    keep_ratio = _keep_ratio(*picked) if picked else DEFAULT_KEEP_RATIO
    return EventsConfig(bus=bus, memory_limit=memory_limit, keep_ratio=keep_ratio)
