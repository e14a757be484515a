"""Rust and C producers -> Python subscriber (the same bus, across languages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import shmbus


def _run(cmd, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def rust_publisher(repo: Path) -> Path:
    """``target/debug/examples/publish``, built with cargo."""
    cargo = os.environ.get("CARGO", shutil.which("cargo") or "cargo")
    done = _run([cargo, "build", "--quiet", "-p", "shmbus", "--example", "publish"], repo)
    assert done.returncode == 0, f"cargo build of the publish example failed:\n{done.stdout[-3000:]}"
    target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
    exe = target / "debug" / "examples" / "publish"
    assert exe.exists(), exe
    return exe


@pytest.fixture(scope="session")
def c_collector(repo: Path) -> Path:
    """``build/c/collector``, built by ``make c-examples``; skipped (with the reason) only if that fails."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed, so build/c/collector cannot be built")
    done = _run([make, "--no-print-directory", "c-examples"], repo)
    if done.returncode != 0:
        pytest.skip(f"`make c-examples` failed, so build/c/collector cannot be built:\n{done.stdout[-2000:]}")
    exe = repo / "build" / "c" / "collector"
    assert exe.exists(), f"`make c-examples` succeeded but did not produce {exe}"
    return exe


def _collect(sub: shmbus.Subscriber, count: int) -> list:
    got = []
    while len(got) < count:
        batch = sub.recv_many(count, timeout=10.0)
        assert batch, f"stalled after {len(got)} of {count} frames"
        got.extend(batch)
    return got


def test_rust_producer_frames_reach_a_python_subscriber(bus_name, rust_publisher):
    with shmbus.Bus.create(bus_name) as bus, bus.subscribe("events.process.#") as sub:
        proc = subprocess.run(
            [str(rust_publisher), bus_name, "events.process.lifecycle", "500"], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        got = _collect(sub, 500)
    bodies = [m.json() for m in got]
    assert [b["i"] for b in bodies] == list(range(500))
    assert {b["producer"] for b in bodies} == {"rust"}
    assert {m.producer for m in got} == {bodies[0]["pid"]}
    assert {m.topic for m in got} == {"events.process.lifecycle"}


def test_rust_producer_creates_a_bus_python_can_open(bus_name, rust_publisher):
    proc = subprocess.run([str(rust_publisher), bus_name, "t", "3"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with shmbus.Bus.open(bus_name) as bus, bus.subscribe(from_="oldest") as sub:
        assert [m.json()["i"] for m in sub.recv_many(10, timeout=1.0)] == [0, 1, 2]


def test_c_producer_frames_reach_a_python_subscriber(bus_name, c_collector):
    with shmbus.Bus.create(bus_name) as bus, bus.subscribe("events.process.#") as sub:
        proc = subprocess.run([str(c_collector), bus_name, "300"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        got = _collect(sub, 300)
    bodies = [m.json() for m in got]
    assert [b["i"] for b in bodies] == list(range(300))
    assert {b["producer"] for b in bodies} == {"c"}
    assert {m.topic for m in got} == {"events.process.lifecycle"}
