"""An outbox relay's heartbeats: the workers' (wire/heartbeat.py), on their topic, carrying the
relay's lag, so that `pulsarjobs queues` and the dashboard — which have no database URL — show
it. Every relay beats, leading or standing by: each reads the lag from the table.

A thread of the relay's process sends them every `heartbeat_interval` while the relay serves,
and a last one saying "stopped" as soon as it is asked to stop. Like a worker's presence, it
never keeps the relay from publishing: when the broker refuses its topic it logs and stays
silent; when the database does not answer, it tells the last lag it read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Protocol

import pulsar
import sqlalchemy as sa
import structlog

from pulsarjobs.clock import utc_now
from pulsarjobs.logs import error_text
from pulsarjobs.outbox.store import Lag
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.keeping import keep_compacted
from pulsarjobs.transport.topics import workers_topic
from pulsarjobs.wire.heartbeat import Heartbeat, OutboxLag, WorkerState, rss_bytes

log = structlog.get_logger("pulsarjobs.outbox")

SEND_TIMEOUT_MS = 5_000


class Relay(Protocol):
    """The relay (relay.py), as its heartbeats read it."""

    connection: Connection
    name: str
    published: int
    stopping: threading.Event

    @property
    def is_leading(self) -> bool: ...

    def lag(self) -> Lag: ...


class RelayPresence:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.settings = relay.connection.settings
        self.started_at = utc_now()
        self.name = f"outbox-relay-{relay.name}"
        self._lag = OutboxLag(0, None, False)
        self._producer: pulsar.Producer | None = None
        self._thread = threading.Thread(target=self._beat_forever, name="pulsarjobs-outbox-beats",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        """Start beating, once in the relay's life (a relay serves once)."""
        if self._thread.ident is None:
            self._thread.start()

    def stopped(self) -> None:
        """Wait (a few seconds at most) until, the relay stopping, its last beat said so."""
        if self._thread.is_alive():
            self._thread.join(2 * SEND_TIMEOUT_MS / 1000 + 1)

    def heartbeat(self, state: WorkerState) -> Heartbeat:
        relay = self.relay
        try:
            lag = relay.lag()
            self._lag = OutboxLag(lag.pending, lag.oldest, relay.is_leading)
        except sa.exc.SQLAlchemyError as exc:  # the database away: the last lag read
            log.warning("cannot read the outbox's lag", error=error_text(exc))
        return Heartbeat(
            worker=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            subscription=self.settings.subscription,
            queues=(),
            concurrency=0,
            busy=0,
            processed=relay.published,
            failed=0,
            rss_bytes=rss_bytes(),
            state=state,
            started_at=self.started_at,
            sent_at=utc_now(),
            interval=self.settings.heartbeat_interval,
            outbox=self._lag,
        )

    def _beat_forever(self) -> None:
        topic = workers_topic(self.settings)
        try:
            self._producer = self.relay.connection.made(
                lambda client: client.create_producer(
                    topic, batching_enabled=False, send_timeout_millis=SEND_TIMEOUT_MS
                )
            )
            keep_compacted(self.settings, topic)
        except Exception as exc:
            log.warning("the outbox relay's heartbeats are off", error=error_text(exc))
            self._close()
            return
        try:
            while not self.relay.stopping.is_set():
                self._send(self.heartbeat("running"))
                self.relay.stopping.wait(self.settings.heartbeat_interval)
            self._send(self.heartbeat("stopped"))
        finally:
            self._close()

    def _send(self, beat: Heartbeat) -> None:
        assert self._producer is not None
        try:
            self._producer.send(beat.encode(), partition_key=beat.worker)
        except Exception as exc:
            log.warning("heartbeat not sent", error=error_text(exc))

    def _close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # the client may be closing already
                self._producer.close()
