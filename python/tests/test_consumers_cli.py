"""`python -m shmbus.consumers` run as a real subprocess with task modules."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import shmbus
from shmbus.config import EventsConfig
from shmbus.events import EventProducer, ObjectEvent

TASKS = '''
import json, os
from shmbus.events import EventTask, LogTask

OUT = os.environ["TASK_OUT"]


def record(task, key):
    with open(OUT, "a") as f:
        f.write(json.dumps({"task": task, "pid": os.getpid(), "key": key}) + "\\n")


def key_of(message):
    return message.event.yeti_object["value"]


class Failing(EventTask):
    acts_on = "new:observable"

    def run(self, message):
        record("Failing", key_of(message))
        raise RuntimeError("Failing failed on purpose")


class Broken(EventTask):
    acts_on = "(unclosed"

    def run(self, message):
        record("Broken", key_of(message))


class Urls(EventTask):
    acts_on = "  (new|update):observable:url  "

    def run(self, message):
        record("Urls", key_of(message))


class Everything(EventTask):
    acts_on = ""

    def run(self, message):
        record("Everything", key_of(message))


class Base(EventTask):
    abstract = True


class AllLogs(LogTask):
    def run(self, message):
        record("AllLogs", message.log if isinstance(message.log, str) else message.log["n"])
'''


class Consumer:
    """A running ``python -m shmbus.consumers`` with its stderr in a file."""

    def __init__(self, tmp_path: Path, args: list, env: dict) -> None:
        self.err_path = tmp_path / f"stderr-{time.monotonic_ns()}.log"
        self.out = tmp_path / "out.jsonl"
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = str(tmp_path)
        full_env["TASK_OUT"] = str(self.out)
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shmbus.consumers", *args],
            cwd=tmp_path,
            env=full_env,
            stdout=self._err,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as in a terminal
        )

    @property
    def log(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, predicate, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; exit={self.proc.poll()}\n{self.log}")

    def records(self) -> list:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0, group: bool = False) -> int:
        """Send ``sig`` (to the whole process group, as a terminal's Ctrl-C does, if ``group``)."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._err.close()


@pytest.fixture
def consumer(tmp_path):
    (tmp_path / "taskmod.py").write_text(textwrap.dedent(TASKS))
    started = []

    def start(*args: str, env: dict = None) -> Consumer:
        c = Consumer(tmp_path, list(args), env or {})
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def url(i: int) -> dict:
    return {"root_type": "observable", "type": "url", "value": f"u{i}"}


def test_events_consumer_runs_matching_tasks_once_per_event_across_workers(consumer, bus_name):
    producer = EventProducer(EventsConfig(bus=bus_name))
    for i in range(20):  # before the consumers start: the group takes them from the oldest
        assert producer.publish_event(ObjectEvent(type="new", yeti_object=url(i))) is not None
    with shmbus.Bus.open(bus_name) as bus:
        bus.publish("events.new", b"this is not JSON")
    c = consumer("events", "--concurrency", "2", "--tasks", "taskmod", "--bus", bus_name)
    c.wait_for(lambda: c.log.count("Worker ready") == 2, "two workers")
    for i in range(20, 40):
        producer.publish_event(ObjectEvent(type="new", yeti_object=url(i)))
    producer.publish_event({"type": "update", "yeti_object": {"root_type": "entity", "type": "campaign", "value": "c"}})
    expected = 40 * 3 + 1
    c.wait_for(lambda: len(c.records()) >= expected, f"{expected} task runs")
    time.sleep(0.3)  # nothing more may arrive
    assert c.stop(signal.SIGTERM) == 0, c.log
    producer.close()

    records = c.records()
    counts = collections.Counter((r["task"], r["key"]) for r in records)
    for i in range(40):
        for task in ("Failing", "Urls", "Everything"):
            assert counts[(task, f"u{i}")] == 1, (task, i)
    assert counts[("Everything", "c")] == 1
    assert not any(r["task"] == "Broken" for r in records)
    assert len(records) == expected
    # Per event, the tasks ran in registration order, in one worker.
    by_key = collections.defaultdict(list)
    for r in records:
        by_key[r["key"]].append((r["task"], r["pid"]))
    for i in range(40):
        runs = by_key[f"u{i}"]
        assert [t for t, _ in runs] == ["Failing", "Urls", "Everything"]
        assert len({p for _, p in runs}) == 1
    log = c.log
    assert log.count("invalid acts_on") == 1, log
    assert log.count("does not parse") == 1, log
    assert "Failing failed on purpose" in log
    assert log.count("Worker stopping") == 2


def test_logs_consumer_gets_every_log_and_stops_on_ctrl_c(consumer, bus_name):
    c = consumer(
        "logs", "--concurrency", "1", "--tasks", "taskmod", "--bus", bus_name, env={"SHMBUS_EVENTS_MEMORY_LIMIT": "8"}
    )
    c.wait_for(lambda: "Worker ready" in c.log, "the worker")
    with EventProducer(EventsConfig(bus=bus_name)) as producer:
        for i in range(10):
            producer.publish_log(f"line {i}")
        producer.publish_log({"n": "dict"})
        producer.publish_event(ObjectEvent(type="new", yeti_object=url(0)))  # other queue: not seen
    c.wait_for(lambda: len(c.records()) >= 11, "11 log task runs")
    assert c.stop(signal.SIGINT) == 0, c.log
    assert [r["key"] for r in c.records()] == [f"line {i}" for i in range(10)] + ["dict"]
    assert "falling back to 64" in c.log  # memory_limit 8 MiB is below Yeti's minimum
    with shmbus.Bus.open(bus_name) as bus:
        assert bus.stats()["memory_limit"] > 32 << 20


def test_ctrl_c_stops_every_worker_process(consumer, bus_name):
    c = consumer("events", "--concurrency", "2", "--bus", bus_name)
    c.wait_for(lambda: c.log.count("Worker ready") == 2, "two workers")
    assert "No events tasks" in c.log
    # A terminal's Ctrl-C sends SIGINT to the whole process group.
    assert c.stop(signal.SIGINT, group=True) == 0, c.log
    assert c.log.count("Worker stopping") == 2
    with shmbus.Bus.open(bus_name) as bus:
        bus.reap()
        assert [s for s in bus.stats()["subscribers"] if s["alive"]] == []


def test_a_task_module_that_does_not_import_is_a_clear_error(consumer, bus_name):
    c = consumer("events", "--concurrency", "1", "--tasks", "no_such_module", "--bus", bus_name)
    assert c.proc.wait(timeout=60) == 2
    assert "cannot import task module 'no_such_module'" in c.log


def test_usage_errors_exit_with_code_2(consumer):
    c = consumer("everything")
    assert c.proc.wait(timeout=60) == 2
    assert "invalid choice" in c.log
