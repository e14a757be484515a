"""Consumer workers for the events layer: ``python -m shmbus.consumers``.

::

    python -m shmbus.consumers events|logs [--concurrency N] [--tasks module[,module]]
                                           [--config PATH] [--bus NAME] [--debug]

starts N worker processes (default: the CPU count; 1 runs in this process)
that join one consumer group on the configured bus (group ``events`` on
topics ``events.#``, or ``logs`` on ``logs.#``), so each message is handled
by exactly one worker. The group is created at the oldest retained frame, so
events published before the consumers started are handled too, like a
queue. Ctrl-C or SIGTERM stops the workers cleanly.

Tasks: ``--tasks`` names modules to import (comma separated, repeatable);
every subclass of :class:`shmbus.events.EventTask` (for ``events``) or
:class:`shmbus.events.LogTask` (for ``logs``) *defined in* those modules is
instantiated with no arguments, in module order then definition order, which
is the order tasks run in. Classes with ``abstract = True`` are skipped. The
modules must be importable (current directory or ``PYTHONPATH``). An
``acts_on`` that is not a valid regex is reported once, by the main process,
and that task is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import multiprocessing
import os
import signal
import sys
import threading
from typing import Any, List, Optional, Sequence, Union

from .._native import Bus
from ..config import EventsConfig, load_events_config
from ..events import EVENTS_QUEUE, LOGS_QUEUE, Dispatcher, EventTask, LogTask

__all__ = ["load_tasks", "main", "run_worker"]

logger = logging.getLogger("shmbus.consumers")

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"

#: Longest wait in ``recv`` before checking whether to stop, in seconds.
POLL = 0.2


class TaskLoadError(Exception):
    """A task module could not be imported."""


def load_tasks(modules: Sequence[str], queue: str) -> List[Union[EventTask, LogTask]]:
    """Import ``modules`` and instantiate their tasks for ``queue``.

    Returns instances of every non-abstract subclass of ``EventTask``
    (``queue="events"``) or ``LogTask`` (``queue="logs"``) defined in those
    modules, in module order then definition order. Raises
    :class:`TaskLoadError` if a module cannot be imported or a task cannot
    be instantiated.
    """
    base = EventTask if queue == EVENTS_QUEUE else LogTask
    tasks: List[Union[EventTask, LogTask]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as e:
            raise TaskLoadError(f"cannot import task module {name!r}: {type(e).__name__}: {e}") from e
        for obj in list(vars(module).values()):
            if (
                inspect.isclass(obj)
                and issubclass(obj, base)
                and obj is not base
                and obj.__module__ == module.__name__
                and not obj.__dict__.get("abstract", False)
            ):
                try:
                    tasks.append(obj())
                except Exception as e:
                    raise TaskLoadError(f"cannot instantiate task {obj.__qualname__}: {type(e).__name__}: {e}") from e
    return tasks


def _setup_logging(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_shmbus", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._shmbus = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def run_worker(
    queue: str,
    modules: Sequence[str],
    config: EventsConfig,
    *,
    stop: Optional[threading.Event] = None,
    report_invalid: bool = True,
) -> int:
    """Consume ``queue`` on ``config.bus`` until ``stop`` is set (or Ctrl-C).

    Joins the consumer group ``queue`` (created at the oldest retained frame
    if it does not exist) and hands each message to a
    :class:`shmbus.events.Dispatcher` of the tasks of ``modules``. Returns
    the number of messages handled.
    """
    tasks = load_tasks(modules, queue)
    dispatcher = Dispatcher(queue, tasks, report_invalid=report_invalid)
    if not dispatcher.tasks:
        logger.warning("No %s tasks to run; messages in the %s queue will be dropped", queue, queue)
    stop = stop or threading.Event()
    handled = 0
    bus = Bus.open_or_create(config.bus, **config.bus_kwargs())
    with bus, bus.join_group(queue, f"{queue}.#", from_="oldest") as member:
        logger.info(
            "Worker ready: pid=%d bus=%r group=%r tasks=%s",
            os.getpid(),
            config.bus,
            queue,
            [type(t).__name__ for t, _ in dispatcher.tasks],
        )
        try:
            while not stop.is_set():
                msg = member.recv(timeout=POLL)
                if msg is None:
                    continue
                dispatcher.handle(msg.payload)
                handled += 1
        except KeyboardInterrupt:
            pass
        logger.info("Worker stopping: pid=%d handled=%d", os.getpid(), handled)
    return handled


def _install_stop_handler(stop: threading.Event) -> None:
    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)


def _worker_entry(queue: str, modules: List[str], config: EventsConfig, debug: bool) -> None:
    """Entry point of a spawned worker process."""
    _setup_logging(debug)
    stop = threading.Event()
    _install_stop_handler(stop)
    try:
        run_worker(queue, modules, config, stop=stop, report_invalid=False)
    except KeyboardInterrupt:
        pass


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shmbus.consumers",
        description="Consume events or logs from the shmbus event bus and run tasks on them.",
    )
    parser.add_argument("type", choices=[EVENTS_QUEUE, LOGS_QUEUE], help="which queue to consume")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="number of worker processes (default: CPU count)"
    )
    parser.add_argument(
        "--tasks",
        action="append",
        default=[],
        help="task module(s) to import, comma separated (repeatable)",
    )
    parser.add_argument("--config", default=None, help="TOML file with an [events] section (default: $SHMBUS_CONFIG)")
    parser.add_argument("--bus", default=None, help="bus name (overrides the configuration)")
    parser.add_argument("--debug", action="store_true", help="enable debug logging")
    args = parser.parse_args(argv)
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


class _Shutdown(Exception):
    pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the consumers CLI; returns the process exit code."""
    args = _parse_args(argv)
    _setup_logging(args.debug)
    queue: str = args.type
    modules = [m.strip() for group in args.tasks for m in group.split(",") if m.strip()]
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        config = load_events_config(args.config)
    except (OSError, ValueError) as e:
        logger.error("Cannot read the configuration: %s", e)
        return 2
    if args.bus:
        config = EventsConfig(bus=args.bus, memory_limit=config.memory_limit, keep_ratio=config.keep_ratio)
    # Import the tasks here first: import errors fail fast, and an invalid
    # acts_on is reported once, not once per worker.
    try:
        tasks = load_tasks(modules, queue)
    except TaskLoadError as e:
        logger.error("%s", e)
        return 2
    Dispatcher(queue, tasks, report_invalid=True)
    concurrency = args.concurrency or multiprocessing.cpu_count()

    if concurrency == 1:
        logger.info("Starting %s worker", queue)
        stop = threading.Event()
        _install_stop_handler(stop)
        try:
            run_worker(queue, modules, config, stop=stop, report_invalid=False)
        except KeyboardInterrupt:
            logger.info("Shutdown requested, exiting...")
        return 0

    def on_term(signum: int, frame: Any) -> None:
        raise _Shutdown()

    signal.signal(signal.SIGTERM, on_term)
    ctx = multiprocessing.get_context("spawn")
    processes = []
    logger.info("Starting %d %s workers", concurrency, queue)
    try:
        for i in range(concurrency):
            p = ctx.Process(
                target=_worker_entry,
                args=(queue, modules, config, args.debug),
                name=f"{queue}-worker-{i}",
            )
            p.start()
            logger.info("Started %s pid=%s", p.name, p.pid)
            processes.append(p)
        while any(p.is_alive() for p in processes):
            for p in processes:
                p.join(timeout=0.5)
        failed = [p for p in processes if p.exitcode != 0]
        for p in failed:
            logger.error("Worker %s pid=%s exited with code %s", p.name, p.pid, p.exitcode)
        return 1 if failed else 0
    except (KeyboardInterrupt, _Shutdown):
        logger.info("Shutdown requested, exiting...")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in processes:
            if p.is_alive():
                logger.info("Stopping worker %s pid=%s", p.name, p.pid)
                p.terminate()
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                logger.warning("Worker %s pid=%s did not stop; killing it", p.name, p.pid)
                p.kill()
                p.join()
        return 0
