"""Unique jobs: while a job holds its unique key, enqueueing that key again makes no new job.

The held keys are marks (marks.py) on the compacted topic `pulsarjobs-unique`: key -> the job
holding it and until when. An enqueue takes the key's lock (keylocks.py: a producer named after
the key), reads the topic to its end, and, if no live hold is there, writes its own hold and
then sends the job, both stored by the broker before the lock goes. A second enqueue, in any
process, waits for the lock, reads the first one's hold and makes no job. The worker that
settles the job (done, dead, cancelled, expired; not a retry) removes the hold under the same
lock, only if it is still this job's. A hold also ends when `unique_for` has passed (by the
clock of the enqueueing process). The exact guarantee is in docs/flow-control.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import EnqueueError
from pulsarjobs.jobs import FlowOptions
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.key_table import KeyTable
from pulsarjobs.transport.keylocks import key_lock
from pulsarjobs.transport.topics import unique_topic
from pulsarjobs.wire.envelope import Envelope, JobArg
from pulsarjobs.wire.records import decode_record, encode_record, instant

log = structlog.get_logger("pulsarjobs.unique")

DEFAULT_UNIQUE_FOR = timedelta(days=1)  # a key given per call, of a job declared without one
LOCK_SCOPE = "unique"


class DuplicateJob(EnqueueError):
    """A unique job's key is held by another job: no job was made. `job_id` is the holder's."""

    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(f"unique key {key!r} is held by job {job_id}: no second job was made")
        self.key = key
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class Hold:
    """A unique key held by a job until it settles, at most until `expires_at`."""

    key: str
    job_id: str
    type: str
    queue: str
    expires_at: datetime

    def encode(self) -> bytes:
        fields = {
            "job_id": self.job_id,
            "type": self.type,
            "queue": self.queue,
            "expires_at": self.expires_at,
        }
        return encode_record(fields)

    @classmethod
    def decode(cls, key: str, data: bytes) -> Hold:
        """Raises ValueError for a message that is no hold."""
        return decode_record(
            data,
            "unique hold",
            lambda f: cls(key, f["job_id"], f["type"], f["queue"], instant(f["expires_at"])),
        )


def hold_for(flow: FlowOptions | None) -> timedelta:
    """How long a job's key is held at most: its `unique_for`, or a day."""
    return flow.unique_for if flow is not None and flow.unique_for else DEFAULT_UNIQUE_FOR


def default_key(type_: str, args: tuple[JobArg, ...], kwargs: Mapping[str, JobArg]) -> str:
    """The job's type and a digest of its arguments: equal calls, equal keys."""
    canonical = json.dumps([args, kwargs], sort_keys=True, default=_bytes_as_hex)
    return f"{type_}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def _bytes_as_hex(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not a job argument")


class UniqueKeys:
    """The held keys as this process last read them, and taking and giving them back."""

    def __init__(
        self, connection: Connection, clock: Clock = utc_now, table: type[KeyTable[Hold]] = KeyTable
    ) -> None:
        self.connection = connection
        self.clock = clock
        self.topic = unique_topic(connection.settings)
        self.table = table(connection, self.topic, Hold.decode)

    def claim(
        self, envelope: Envelope, hold_for: timedelta, send: Callable[[Envelope], Future[None]]
    ) -> str:
        """Hold the envelope's key and `send` the job (stored before this returns), or make no
        job if the key is held: returns the id of the job that holds the key (this one's, when
        it was sent)."""
        key = envelope.unique_key
        assert key is not None
        hold = Hold(key, envelope.id, envelope.type, envelope.queue, envelope.created_at + hold_for)
        with self._locked(key) as write:
            held = self.holder(key)
            if held is not None:
                return held.job_id
            write(hold.encode())
            try:
                send(envelope).result()
            except BaseException:
                write(b"")  # not sent: the key is free again
                raise
        return envelope.id

    def release(self, key: str, job_id: str) -> None:
        """The job settled: its key is free, unless another job holds it by now."""
        with self._locked(key) as write:
            held = self.holder(key)
            if held is not None and held.job_id == job_id:
                write(b"")

    def holder(self, key: str) -> Hold | None:
        """The live hold of `key` as stored now (reads what others wrote since the last look)."""
        held = self.table.get(key)
        return held if held is not None and held.expires_at > self.clock() else None

    def held(self) -> list[Hold]:
        """Every live hold, the soonest to expire first."""
        now = self.clock()
        return sorted(
            (hold for hold in self.table.values() if hold.expires_at > now),
            key=lambda hold: hold.expires_at,
        )

    def close(self) -> None:
        self.table.close()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Callable[[bytes], None]]:
        """Hold the key's lock; yields what stores a value of the key (b"": removes it)."""
        with key_lock(self.connection, self.topic, LOCK_SCOPE, key) as producer:
            yield lambda data: producer.send(data, partition_key=key)
