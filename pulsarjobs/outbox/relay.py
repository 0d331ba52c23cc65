"""The outbox relay: publishes the rows committed to the outbox table, each job stored once.

Leadership: every relay of an outbox asks for the exclusive producer of its leader topic
(transport/leadership.py, as the cron scheduler does); the broker grants it to one, queues the
others, and passes it on the moment the leader's connection drops, a `kill -9` included.

Stored once: the leader publishes through producers named after the outbox (the same name in
every relay of that database and namespace) to topics with the broker's de-duplication on. The
broker keeps, per topic and producer name, the last sequence id it stored, and drops — while
reporting it stored — any message whose id is not above it. Rows commit out of their insert
order, so a row's id cannot be its sequence id: the relay numbers rows in the order it publishes
them and stores each row's number in the row, committed, before sending it (claiming). A relay
that takes over first sends again the rows claimed but not marked published, with their stored
numbers (the broker drops those it has), then claims new rows above every number claimed and
above each producer's last sequence id (published rows are pruned). The numbers run across
all of the outbox's topics, so they rise on each.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import timedelta

import pulsar
import sqlalchemy as sa
import structlog

from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.logs import error_text
from pulsarjobs.outbox.presence import RelayPresence
from pulsarjobs.outbox.publishers import Publishers
from pulsarjobs.outbox.store import Lag, Row, Store
from pulsarjobs.outbox.wakeup import Wakeup
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.leadership import leadership
from pulsarjobs.transport.topics import outbox_leader_topic, outbox_producer_name
from pulsarjobs.wire.envelope import Envelope, decode

log = structlog.get_logger("pulsarjobs.outbox")

RETRY_SECONDS = 2.0
PRUNE_EVERY_SECONDS = 60.0


def outbox_name(url: sa.URL) -> str:
    """The outbox of a database, named by where the database is (not by driver, user or
    password): every relay of one database, wherever it runs, has the same."""
    where = f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


class Relay:
    def __init__(
        self,
        engine: sa.Engine,
        connection: Connection,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 500,
        keep_published: timedelta = timedelta(hours=1),
        name: str | None = None,
    ) -> None:
        """Relay the outbox table of `engine`'s database to the broker of `connection`: the
        rows of the connection's namespace. Published rows are deleted `keep_published` later."""
        self.connection = connection
        self.store = Store(engine, connection.settings.full_namespace)
        self.wakeup = Wakeup(engine, poll_interval)
        self.batch_size = batch_size
        self.keep_published = keep_published
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        outbox = outbox_name(engine.url)
        self.producer_name = outbox_producer_name(outbox)
        self.leader_topic = outbox_leader_topic(connection.settings, outbox)
        self.stopping = threading.Event()
        self.leading = threading.Event()
        self.moved = time.monotonic()  # when its serving thread last went round
        self.published = 0  # jobs the broker stored (or had) from this relay
        self.duplicates = 0  # unique jobs not published: their key was held
        self._pruned = 0.0
        self._said_standing_by = False
        self.presence = RelayPresence(self)  # its heartbeats, with its lag, while it serves

    @property
    def serving(self) -> bool:
        return not self.stopping.is_set()

    @property
    def is_leading(self) -> bool:
        return self.leading.is_set()

    def stop(self) -> None:
        self.stopping.set()

    def lag(self) -> Lag:
        """The rows not yet published, and when the oldest was enqueued (read from the table)."""
        return self.store.lag()

    def serve(self) -> None:
        """Wait for leadership, relay until it is lost, again, until stopped."""
        unique_keys = UniqueKeys(self.connection)
        self.presence.start()
        try:
            while not self.stopping.is_set():
                self.moved = time.monotonic()
                try:
                    self._serve_once(unique_keys)
                except pulsar.Timeout:  # another relay leads: wait for leadership again
                    if not self._said_standing_by:
                        self._said_standing_by = True
                        log.info("standing by: another relay publishes the outbox",
                                 relay=self.name)  # fmt: skip
                except Exception as exc:
                    if self.stopping.is_set():
                        break
                    log.warning("outbox relay failed; retrying", error=error_text(exc))
                    self.stopping.wait(RETRY_SECONDS)
                finally:
                    self.leading.clear()
        finally:
            self.presence.stopped()
            unique_keys.close()
            self.wakeup.close()

    def _serve_once(self, unique_keys: UniqueKeys) -> None:
        with leadership(self.connection.client, self.leader_topic) as leader:
            if self.stopping.is_set():
                return
            log.info("leading: this relay publishes the outbox", relay=self.name,
                     producer=self.producer_name)  # fmt: skip
            self.leading.set()
            publishers = Publishers(self.connection, self.producer_name, self.stopping)
            try:
                self.wakeup.listen()  # before looking: what commits after is noticed
                self._publish(publishers, unique_keys, self.store.claimed())
                while not self.stopping.is_set() and leader.is_connected():
                    self.moved = time.monotonic()
                    if not self._relay_batch(publishers, unique_keys):
                        self._prune_now_and_then()
                        self.wakeup.wait(self.stopping)
            finally:
                publishers.close()

    def _relay_batch(self, publishers: Publishers, unique_keys: UniqueKeys) -> bool:
        """Claim and publish the next committed rows; False when there were none."""
        rows = self.store.unclaimed(self.batch_size)
        if not rows:
            return False
        publishers.open(row.topic for row in rows)
        # From 1: the Python client ignores a sequence id of 0 and numbers that message itself.
        first = max(self.store.last_sequence_id(), publishers.last_sequence_id, 0) + 1
        self._publish(publishers, unique_keys, self.store.claim(rows, first))
        return True

    def _publish(
        self, publishers: Publishers, unique_keys: UniqueKeys, rows: Sequence[Row]
    ) -> None:
        """Send claimed rows in their order, wait for the broker, mark them published. A
        unique job is sent once its key is claimed; one whose key another job holds is not."""
        if not rows:
            return
        publishers.open(row.topic for row in rows)
        acks = Acks(sum(row.unique_key is None for row in rows))
        duplicates: dict[int, str] = {}
        for row in rows:
            if row.unique_key is None:
                publishers.send(row, acks)
                continue
            holder = self._claim_key(publishers, unique_keys, row)
            if holder != row.job_id:
                duplicates[row.id] = holder
                log.info("outbox job not published: its unique key is held", job_id=row.job_id,
                         key=row.unique_key, holder=holder)  # fmt: skip
        acks.stored.result()
        self.store.mark_published(rows, duplicates)
        self.published += len(rows) - len(duplicates)
        self.duplicates += len(duplicates)

    @staticmethod
    def _claim_key(publishers: Publishers, unique_keys: UniqueKeys, row: Row) -> str:
        """Hold the row's unique key and send it; the id of the job that holds the key. A key
        this very job holds already (a relay died after claiming it) is sent again: the broker
        drops it if it has it."""
        assert row.unique_for is not None
        envelope = decode(row.payload)
        sent: list[Row] = []

        def send(_envelope: Envelope) -> Future[None]:
            sent.append(row)
            return publishers.send(row)

        holder = unique_keys.claim(envelope, timedelta(seconds=row.unique_for), send)
        if holder == row.job_id and not sent:
            publishers.send(row).result()
        return holder

    def _prune_now_and_then(self) -> None:
        if time.monotonic() - self._pruned > PRUNE_EVERY_SECONDS:
            self._pruned = time.monotonic()
            self.store.prune(self.keep_published)
