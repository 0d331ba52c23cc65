"""A compacted topic read as a table: each key's latest value, as the broker stored it.

Keyed facts that several processes share — unique keys' holds (flow/unique.py), debounce
windows (flow/debounce.py) — live on compacted topics of the namespace, each written with its key
as the message key and removed with an empty value (a tombstone). A process reads such a topic
once from its start (about one message per key: the topic is compacted), then only what was
written since. Each look asks the broker whether more is stored (`has_message_available` asks it
whenever nothing is buffered), so a look sees every value the broker stored before it began.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import pulsar
import structlog

from pulsarjobs.transport.connection import Connection, client_errors

log = structlog.get_logger("pulsarjobs.key_table")

T = TypeVar("T")
READ_TIMEOUT_MS = 5_000


class KeyTable(Generic[T]):
    """The values of a compacted topic by key, decoded by `decode` (ValueError: not one of
    them, skipped), as this process last read them."""

    def __init__(
        self, connection: Connection, topic: str, decode: Callable[[str, bytes], T]
    ) -> None:
        self.connection = connection
        self.topic = topic
        self.decode = decode
        self._values: dict[str, T] = {}
        self._reader: pulsar.Reader | None = None
        self._reading = threading.Lock()  # one catch-up at a time

    def get(self, key: str) -> T | None:
        """The key's value as stored now (reads what others wrote since the last look)."""
        self.catch_up()
        return self._values.get(key)

    def known(self, key: str) -> T | None:
        """The key's value as this process last read it (beside a `get` of another key)."""
        with self._reading:
            return self._values.get(key)

    def values(self) -> list[T]:
        """Every key's value as stored now."""
        self.catch_up()
        with self._reading:  # another thread's catch-up may be changing them
            return list(self._values.values())

    def apply(self, key: str, data: bytes) -> None:
        """A value read (or written here): b"" removes the key."""
        if not data:
            self._values.pop(key, None)
            return
        try:
            self._values[key] = self.decode(key, data)
        except ValueError:
            log.warning("not a value of this table; skipped", topic=self.topic, key=key)

    def catch_up(self) -> None:
        """Read to the end of the topic."""
        with self._reading, client_errors(self.connection.settings.service_url,
                                          f"reading {self.topic}"):  # fmt: skip
            if self._reader is None:
                self.connection.keep_marks(self.topic)
                self._reader = self.connection.client.create_reader(
                    self.topic, pulsar.MessageId.earliest, is_read_compacted=True
                )
            while self._reader.has_message_available():
                message = self._reader.read_next(timeout_millis=READ_TIMEOUT_MS)
                self.apply(message.partition_key(), message.data())

    def close(self) -> None:
        with self._reading:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
