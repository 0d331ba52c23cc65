"""How the relay waits for new rows: PostgreSQL's LISTEN (each `Outbox.enqueue` notifies, on
commit), the poll interval as a fallback; polling alone on other databases."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import sqlalchemy as sa
import structlog

from pulsarjobs.logs import error_text
from pulsarjobs.outbox.table import NOTIFY_CHANNEL

log = structlog.get_logger("pulsarjobs.outbox")

STOP_CHECK_SECONDS = 0.5


class Wakeup:
    def __init__(self, engine: sa.Engine, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self.listens = engine.dialect.name == "postgresql"
        self.url = engine.url
        self._listening: Any = None  # a psycopg connection, in autocommit, that LISTENs

    def listen(self) -> None:
        """Start listening: what is committed from now on wakes `wait`."""
        if not self.listens or self._listening is not None:
            return
        import psycopg  # the outbox extra's; only needed with PostgreSQL

        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._listening = psycopg.connect(conninfo, autocommit=True)
            self._listening.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("outbox relay cannot LISTEN; polling", error=error_text(exc))
            self.close()

    def wait(self, stopping: threading.Event) -> None:
        """Until a notification came (any since the last wait counts), the poll interval
        passed, or `stopping` is set."""
        if self._listening is None:
            self.listen()
        if self._listening is None:
            stopping.wait(self.poll_interval)
            return
        import psycopg

        deadline = time.monotonic() + self.poll_interval
        try:
            while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
                # In slices, so that a stop is seen within one.
                slice_ = min(left, STOP_CHECK_SECONDS)
                if any(True for _ in self._listening.notifies(timeout=slice_, stop_after=1)):
                    return
        except psycopg.Error as exc:
            log.warning("outbox relay lost its LISTEN; polling", error=error_text(exc))
            self.close()
            stopping.wait(self.poll_interval)

    def close(self) -> None:
        if self._listening is not None:
            with contextlib.suppress(Exception):  # a lost connection has nothing to close
                self._listening.close()
            self._listening = None
