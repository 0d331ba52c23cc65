"""Paused queues: a queue paused for every worker of the namespace, whatever its subscription.

A pause is a mark (marks.py) on the topic `pulsarjobs-paused`, keyed by queue; a resume removes
it. Every worker follows the topic and stops taking a paused queue's jobs within moments: they
stay stored, unacknowledged, until the queue is resumed. Jobs a worker had already fetched stay
with it, held and not run (counted in flight); the rest wait on the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from pulsarjobs.clock import utc_now
from pulsarjobs.transport import marks
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import check_queue_name, paused_topic
from pulsarjobs.wire.records import decode_record, encode_record, instant

log = structlog.get_logger("pulsarjobs.pauses")


@dataclass(frozen=True, slots=True)
class Pause:
    """A paused queue: since when, and who paused it (`user@host`)."""

    queue: str
    paused_at: datetime
    by: str

    def encode(self) -> bytes:
        return encode_record({"queue": self.queue, "paused_at": self.paused_at, "by": self.by})

    @classmethod
    def decode(cls, data: bytes) -> Pause:
        """Raises ValueError for a message that is no pause."""
        return decode_record(
            data, "pause", lambda f: cls(f["queue"], instant(f["paused_at"]), f["by"])
        )


def pause(connection: Connection, queue: str, *, by: str | None = None) -> None:
    """Pause `queue` for every worker; returns once the broker has stored the pause."""
    mark = Pause(check_queue_name(queue), utc_now(), by or marks.who())
    connection.put_mark(paused_topic(connection.settings), queue, mark.encode())


def resume(connection: Connection, queue: str) -> None:
    """Let workers take `queue`'s jobs again; returns once the broker has stored it."""
    connection.put_mark(paused_topic(connection.settings), check_queue_name(queue), b"")


def paused_queues(connection: Connection) -> dict[str, Pause]:
    """The paused queues of the namespace, by name."""
    found = {}
    for queue, data in marks.read(connection, paused_topic(connection.settings)).items():
        try:
            found[queue] = Pause.decode(data)
        except ValueError:
            continue  # not ours: someone else wrote to the topic
    return found
