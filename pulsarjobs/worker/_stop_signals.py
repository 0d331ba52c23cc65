"""How a worker hears the signals that stop it: SIGTERM or SIGINT stops it gracefully, a second
one exits at once (unacknowledged jobs go back to the queue); SIGTSTP turns it quiet.

A child of a supervisor (processes.py) ignores SIGINT: a terminal's Ctrl-C signals the whole
process group, and the supervisor forwards it as SIGTERM. A SIGTERM sent to the whole group
(systemd's default KillMode, `kill -TERM -PGID`) reaches such a child twice, from its sender
and forwarded: within ECHO_S of the first, a second is the same stop, not a second signal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("pulsarjobs.worker")

ECHO_S = 2.0  # in a supervisor's child: a second SIGTERM this soon after the first is its echo


class StopSignals:
    def __init__(self, stop: Callable[[], None], quiet: Callable[[], None], grace_s: float) -> None:
        self.stop = stop
        self.quiet = quiet
        self.grace_s = grace_s
        self._first: float | None = None  # when the first stop signal came
        self._echo_s = 0.0  # a process on its own gets each signal once: no echo

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self._on_stop)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a supervisor's child
            self._echo_s = ECHO_S
        else:
            loop.add_signal_handler(signal.SIGINT, self._on_stop)
        loop.add_signal_handler(signal.SIGTSTP, self.quiet)

    def _on_stop(self) -> None:
        now = time.monotonic()
        if self._first is not None:
            if now - self._first < self._echo_s:
                return
            log.warning("second signal: exiting now; unacked jobs go back to the queue")
            os._exit(1)
        self._first = now
        log.info("stopping: finishing running jobs", grace_seconds=self.grace_s)
        self.stop()
