"""Marks: small facts by key that operators set and every worker follows — a paused queue, a
cancelled job — stored on a compacted topic of the namespace.

A mark is a JSON value keyed by what it is about (a queue, a job id); an empty value (a
tombstone) removes it. Marks must last for months and across broker restarts, but a topic that
no subscription holds may lose its messages, and the broker deletes inactive topics. So each
marks topic gets a durable subscription that never acknowledges (as dead-letter topics get an
initial one), which keeps every mark stored, and the broker is asked to compact the topic, so
that reading it reads about one message per key however many marks were ever set
(`Connection.keep_marks`; `Connection.put_mark` stores one).

Workers follow a marks topic with a TableView (`Connection.follow_marks`): created, it has read
every mark; then its listener is told of each new one (key, value; an empty value: the mark was
removed), on the client's listener thread.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import time

import pulsar

from pulsarjobs.transport.connection import Connection, client_errors

READ_TIMEOUT_MS = 5_000
READER_ATTEMPTS, READER_RETRY_S = 3, 0.5


def read(connection: Connection, topic: str) -> dict[str, bytes]:
    """Every mark on the topic now, by key."""
    marks: dict[str, bytes] = {}
    with client_errors(connection.settings.service_url, f"reading {topic}"):
        connection.keep_marks(topic)
        reader = _reader(connection, topic)
        try:
            while reader.has_message_available():
                message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
                marks[message.partition_key()] = message.data()
        finally:
            reader.close()
    return {key: value for key, value in marks.items() if value}  # tombstones removed them


def who() -> str:
    """`user@host`: who set a mark, as operators see it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "?"
    return f"{user}@{socket.gethostname()}"


def _reader(connection: Connection, topic: str) -> pulsar.Reader:
    """A reader of the topic from its first mark. ConsumerBusy, for a reader's own randomly
    named subscription, can only be the client's own subscribe sent again after a timeout on a
    loaded broker (seen once in a CI run): asked once more, the broker answers."""

    def make() -> pulsar.Reader:
        return connection.client.create_reader(
            topic, pulsar.MessageId.earliest, is_read_compacted=True
        )

    for _ in range(READER_ATTEMPTS - 1):
        with contextlib.suppress(pulsar.ConsumerBusy):
            return make()
        time.sleep(READER_RETRY_S)
    return make()
