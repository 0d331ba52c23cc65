"""The relay's producers while it leads: one per topic, all named after the outbox, on topics
with the broker's de-duplication on, each message sent with its row's sequence id."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

import pulsar

from pulsarjobs.outbox.store import Row
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.answers import Acks, send_failure, send_options
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.job_index import JobIndex
from pulsarjobs.transport.leadership import deduplicate
from pulsarjobs.transport.topics import queue_of

ORDERED_SUFFIX = "-ordered"  # ordered jobs' topics, read on a Key_Shared subscription


class Publishers:
    def __init__(self, connection: Connection, name: str, stopping: threading.Event) -> None:
        self.connection = connection
        self.name = name
        self.stopping = stopping
        self.producers: dict[str, pulsar.Producer] = {}
        self.last_sequence_id = -1  # the highest the broker stored from any of them
        self.index = JobIndex(lambda: connection)  # where each job it relays is stored

    def open(self, topics: Iterable[str]) -> None:
        """Make the topics' producers, with the workers' subscription and de-duplication in
        place first; learn the last sequence id the broker stored for the name on each."""
        settings = self.connection.settings
        for topic in sorted(set(topics) - self.producers.keys()):
            self.connection.prepare_queue(
                topic, settings.subscription, key_shared=topic.endswith(ORDERED_SUFFIX)
            )
            with Admin.of(settings) as admin:
                deduplicate(admin, topic, self.stopping)
            producer = self.connection.named_producer(topic, self.name)
            self.producers[topic] = producer
            self.last_sequence_id = max(self.last_sequence_id, producer.last_sequence_id())

    def send(self, row: Row, acks: Acks | None = None) -> Future[None]:
        """Send a claimed row (its topic opened); the future completes once the broker stored
        it, or dropped it as one it had stored already."""
        assert row.sequence_id, "a claimed row's sequence id is 1 or more"
        acks, settings = acks or Acks(1), self.connection.settings

        def acked(result: Any, message_id: Any) -> None:
            if result == pulsar.Result.Ok:
                self.index.note((row.job_id, queue_of(settings, row.topic), row.topic, message_id))
                acks.ok()
            else:
                acks.failed(send_failure(row.topic, result, len(row.payload)))

        options = send_options(row.deliver_at, row.properties, row.message_key)
        self.producers[row.topic].send_async(
            row.payload, acked, sequence_id=row.sequence_id, **options
        )
        return acks.stored

    def close(self) -> None:
        self.index.close()
        for producer in self.producers.values():
            with contextlib.suppress(pulsar.PulsarException):  # lost with the broker
                producer.close()
        self.producers = {}
