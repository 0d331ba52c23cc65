"""Several worker processes under one supervisor.

Each child builds its own App and Pulsar client after it starts (the client is not fork-safe).
The supervisor forwards SIGTERM, SIGINT (as SIGTERM) and SIGTSTP, and restarts a child that
dies while the group is not stopping, so a crashed process does not shrink the pool — at once
the first time, then with a growing delay while processes keep dying young (a job that kills
its process would otherwise have them restart in a tight loop), and counts a crash for each job
the dead child was running, in a crash ledger that ends such a job (crashes.py). With
`--metrics-port`, the supervisor serves the metrics of all its children on that one port (see
metrics.py).

A terminal's Ctrl-C signals the whole process group: children ignore SIGINT and stop on the
SIGTERM their supervisor forwards, so one Ctrl-C is one stop signal (a second one, forwarded
again, exits at once; worker/_stop_signals.py). An app that cannot be loaded is a configuration
error, not a crash: the supervisor says so in one line and exits 1 instead of restarting its
children. A child that exits 0 was stopped on purpose (`pulsarjobs workers stop`): it is not
replaced, and the group ends once every child has.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.loading import load_app
from pulsarjobs.logs import LogFormat, configure_logging
from pulsarjobs.middleware import Middleware
from pulsarjobs.worker.crashes import CrashLedger
from pulsarjobs.worker.health import WEDGED_AFTER
from pulsarjobs.worker.metrics import GroupMetrics, WorkerMetrics

if TYPE_CHECKING:
    from pulsarjobs.scheduling.scheduler import Scheduler
    from pulsarjobs.worker.worker import Worker

log = structlog.get_logger("pulsarjobs.processes")

RESTART_FIRST_DELAY_S = 0.5  # after the second death in a row; it doubles from there
RESTART_MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a process that lived this long resets the delay
ORPHAN_CHECK_S = 1.0  # how often a child looks whether its supervisor still lives
CONFIGURATION_ERROR = 78  # a child's exit code for a mistake no restart mends (EX_CONFIG)


@dataclass
class Restarts:
    """How long one process slot waits before it starts a process again."""

    deaths_in_a_row: int = 0

    def delay_after(self, lived_seconds: float) -> float:
        if lived_seconds >= HEALTHY_AFTER_S:
            self.deaths_in_a_row = 0
        self.deaths_in_a_row += 1
        if self.deaths_in_a_row == 1:
            return 0.0
        growth: float = RESTART_FIRST_DELAY_S * 2.0 ** (self.deaths_in_a_row - 2)
        return min(RESTART_MAX_DELAY_S, growth)


def run_worker(
    app_reference: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
    metrics_port: int | None = None,
    in_group: bool = False,
    crash_ledger: str | None = None,
    wedged_after: float = WEDGED_AFTER,
) -> None:
    """One worker process; with `with_scheduler`, it also competes to lead the schedules. With
    `metrics_port`, it serves its metrics there, or, `in_group`, leaves that to its supervisor.
    `crash_ledger`: the directory where its supervisor learns what it runs (crashes.py)."""
    from pulsarjobs.scheduling.scheduler import Scheduler
    from pulsarjobs.worker.worker import Worker

    app = load_app(app_reference, settings)
    metrics = (None if metrics_port is None
               else WorkerMetrics(None if in_group else metrics_port, wedged_after))  # fmt: skip
    worker = Worker(app, **options, metrics=metrics, crash_ledger=crash_ledger)
    if not with_scheduler:
        worker.run()
        return
    scheduler = Scheduler(app)
    app.hooks.add(StopsScheduler(scheduler))  # before the worker closes the app they share
    leading = threading.Thread(target=scheduler.serve, name="pulsarjobs-scheduler", daemon=True)
    leading.start()
    try:
        worker.run()
    finally:
        scheduler.stop()
        leading.join(5)


class StopsScheduler(Middleware):
    """Stops a worker's scheduler as the worker stops, before it closes the app: a tick being
    enqueued then finishes, job and record both stored."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def on_worker_stop(self, worker: Worker) -> None:
        self.scheduler.stop()


def run_child(
    app_reference: str,
    log_format: LogFormat,
    log_level: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
    metrics_port: int | None = None,
    crash_ledger: str | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C comes from the supervisor, as SIGTERM
    configure_logging(log_format, log_level)
    threading.Thread(target=stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    try:
        run_worker(app_reference, options, with_scheduler, settings, metrics_port,
                   in_group=True, crash_ledger=crash_ledger)  # fmt: skip
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(CONFIGURATION_ERROR)


def stop_when_orphaned(supervisor: int) -> None:
    """A child whose supervisor died (kill -9 included) stops gracefully, as on SIGTERM: no
    one would restart it, and a restarted group would run beside it."""
    while os.getppid() == supervisor:
        time.sleep(ORPHAN_CHECK_S)
    log.warning("the supervisor is gone; this worker process stops", supervisor=supervisor)
    os.kill(os.getpid(), signal.SIGTERM)


def supervise(
    app_reference: str,
    processes: int,
    log_format: LogFormat,
    log_level: str,
    options: dict[str, Any],
    with_scheduler: bool = False,
    settings: dict[str, Any] | None = None,
    metrics_port: int | None = None,
    wedged_after: float = WEDGED_AFTER,
) -> int:
    load_app(app_reference, settings)  # a mistake in it fails here, in one line, before any child
    crashes = CrashLedger()
    arguments = (app_reference, log_format, log_level, options, with_scheduler, settings,
                 metrics_port, crashes.directory)  # fmt: skip
    metrics = GroupMetrics(metrics_port, wedged_after) if metrics_port is not None else None
    try:
        if metrics is not None:
            metrics.start()  # before the children: they inherit where to write
        return run_children(processes, arguments, metrics, crashes)
    finally:
        if metrics is not None:
            metrics.stop()
        crashes.close()


def run_children(
    processes: int, arguments: tuple[Any, ...], metrics: GroupMetrics | None, crashes: CrashLedger
) -> int:
    """Start the children, restart the ones that die, until a stop signal and they all end."""
    context = multiprocessing.get_context("spawn")

    def spawn() -> BaseProcess:
        child = context.Process(target=run_child, args=arguments, daemon=False)
        child.start()
        return child

    children = [spawn() for _ in range(processes)]
    started_at = [time.monotonic()] * processes
    restarts = [Restarts() for _ in range(processes)]
    restart_at: list[float | None] = [None] * processes
    stopping = False
    misconfigured = False
    ended = [False] * processes  # stopped as asked (`pulsarjobs workers stop`): not replaced

    def watched() -> list[int | None]:
        """The processes the probes ask about: None for one to be started again."""
        return [child.pid if child.is_alive() else None
                for index, child in enumerate(children) if not ended[index]]  # fmt: skip

    if metrics is not None and metrics.health is not None:
        metrics.health.processes = watched

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = stopping or signum in (signal.SIGTERM, signal.SIGINT)
        if stopping and metrics is not None and metrics.health is not None:
            metrics.health.stopping = True  # unready at once, before the processes hear of it
        to_children = signal.SIGTERM if signum == signal.SIGINT else signum
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, to_children)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
        signal.signal(signum, forward)
    log.info("supervising worker processes", processes=processes)
    while any(child.is_alive() for child in children) or not (stopping or all(ended)):
        now = time.monotonic()
        for index, child in enumerate(children):
            if stopping or ended[index] or child.is_alive():
                continue
            if child.exitcode == 0:  # a graceful stop it was asked for: no death to mend
                ended[index] = True
                log.info("worker process stopped", pid=child.pid)
                continue
            if child.exitcode == CONFIGURATION_ERROR:  # it said why; every restart would too
                misconfigured = True
                forward(signal.SIGTERM, None)
                continue
            if restart_at[index] is None:
                running = crashes.process_died(child.pid) if child.pid is not None else []
                if metrics is not None and child.pid is not None:
                    metrics.process_died(child.pid)
                delay = restarts[index].delay_after(now - started_at[index])
                restart_at[index] = now + delay
                log.warning("worker process died; starting another", pid=child.pid,
                            exitcode=child.exitcode, start_in=delay,
                            jobs_running=running)  # fmt: skip
            if now >= (restart_at[index] or now):
                children[index], started_at[index], restart_at[index] = spawn(), now, None
        # Back at once when a child dies: its jobs' crashes count before they run elsewhere.
        alive = [child.sentinel for child in children if child.is_alive()]
        multiprocessing.connection.wait(alive, timeout=0.2)
    if misconfigured:
        return 1
    return max((child.exitcode or 0) for child in children)
