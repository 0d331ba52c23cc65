"""Several worker processes under one supervisor.

Each child builds its own App and Pulsar client after it starts (the client is not fork-safe).
The supervisor forwards SIGTERM, SIGINT and SIGTSTP, and restarts a child that dies while the
group is not stopping, so a crashed process does not shrink the pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import structlog

from pulsarjobs.loading import load_app
from pulsarjobs.logs import LogFormat, configure_logging

log = structlog.get_logger("pulsarjobs.processes")


def run_worker(
    app_reference: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
) -> None:
    """One worker process; with `with_scheduler`, it also competes to lead the schedules."""
    from pulsarjobs.scheduler import Scheduler
    from pulsarjobs.worker import Worker

    app = load_app(app_reference, settings)
    worker = Worker(app, **options)
    if not with_scheduler:
        worker.run()
        return
    scheduler = Scheduler(app)
    leading = threading.Thread(target=scheduler.serve, name="pulsarjobs-scheduler", daemon=True)
    leading.start()
    try:
        worker.run()
    finally:
        scheduler.stop()
        leading.join(5)


def run_child(
    app_reference: str,
    log_format: LogFormat,
    log_level: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
) -> None:
    configure_logging(log_format, log_level)
    run_worker(app_reference, options, with_scheduler, settings)


def supervise(
    app_reference: str,
    processes: int,
    log_format: LogFormat,
    log_level: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
) -> int:
    context = multiprocessing.get_context("spawn")
    arguments = (app_reference, log_format, log_level, options, with_scheduler, settings)

    def spawn() -> BaseProcess:
        child = context.Process(target=run_child, args=arguments, daemon=False)
        child.start()
        return child

    children = [spawn() for _ in range(processes)]
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
        signal.signal(signum, forward)
    log.info("supervising worker processes", processes=processes)
    while any(child.is_alive() for child in children) or not stopping:
        for index, child in enumerate(children):
            if not child.is_alive() and not stopping:
                log.warning(
                    "worker process died; starting another", pid=child.pid, exitcode=child.exitcode
                )
                children[index] = spawn()
        time.sleep(0.2)
    return max((child.exitcode or 0) for child in children)
