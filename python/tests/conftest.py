"""Shared fixtures: unique bus names that are always removed, repo paths."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import shmbus

#: Every bus made by this test session starts with this, so a leftover is easy to find.
SESSION_PREFIX = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:6]}-"

REPO = Path(__file__).resolve().parents[2]


def _remove(name: str) -> None:
    try:
        shmbus.Bus.remove(name)
    except shmbus.BusNotFound:
        pass


@pytest.fixture
def make_name() -> Iterator[Callable[[str], str]]:
    """A factory of unique bus names; every bus named by it is removed afterwards."""
    names: List[str] = []

    def make(tag: str = "bus") -> str:
        name = f"{SESSION_PREFIX}{tag}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        _remove(name)


@pytest.fixture
def bus_name(make_name: Callable[[str], str]) -> str:
    """One unique bus name, removed after the test."""
    return make_name("t")


@pytest.fixture
def bus(bus_name: str) -> Iterator[shmbus.Bus]:
    """A small fresh bus (1 MiB), closed and removed after the test."""
    b = shmbus.Bus.create(bus_name, memory_limit=1 << 20, max_frame_size=4096)
    yield b
    b.close()


@pytest.fixture(scope="session", autouse=True)
def no_segment_left_behind() -> Iterator[None]:
    """Remove (and report) any segment of this session still in /dev/shm at the end."""
    yield
    left = [n for n in shmbus.Bus.list() if n.startswith(SESSION_PREFIX)]
    for name in left:
        _remove(name)
    assert not left, f"tests left these buses behind: {left}"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO
