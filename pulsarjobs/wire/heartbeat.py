"""Heartbeats: what each worker tells about itself every few seconds.

They go to the topic `pulsarjobs-workers` of the namespace, keyed by worker id. The topic is
compacted, so a reader of its compacted view gets about one message per worker — its latest —
however long workers have run. A worker not heard from for more than three of its own
intervals is gone (killed, or cut off from the broker); its last heartbeat says what it was.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import asdict, dataclass, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from typing import Any, Literal

import pulsar

from pulsarjobs.wire.records import decode_record, encode_record, instant

GONE_AFTER_BEATS = 3
COMPACTION_THRESHOLD_BYTES = 1024 * 1024  # about 3,000 heartbeats between compactions
READ_TIMEOUT_MS = 5_000
RUNNING_SHOWN = 100  # running jobs a heartbeat lists at most; `busy` counts them all
ENDED_SHOWN = 100  # jobs that ended with a progress, listed for PROGRESS_KEPT_AFTER at most
PROGRESS_KEPT_AFTER = timedelta(minutes=10)  # a job's last progress, heard of once it ended
PROGRESS_MESSAGE_SHOWN = 200  # characters of a progress message a heartbeat carries

WorkerState = Literal["running", "quiet", "stopping", "stopped"]
SeenState = Literal["running", "quiet", "stopping", "stopped", "gone"]


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a job got, as it last said with `current_job().progress(done, total, message)`."""

    done: float
    total: float | None = None  # None: the job does not know (yet)
    message: str = ""

    @property
    def percent(self) -> float | None:
        """done of total in percent, when the total is known (and not 0)."""
        return None if not self.total else 100 * self.done / self.total

    def __str__(self) -> str:
        amount = f"{self.done:g}" if self.total is None else f"{self.done:g} of {self.total:g}"
        if self.percent is not None:
            amount += f" ({self.percent:.0f}%)"
        return f"{amount}: {self.message}" if self.message else amount


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job a worker runs now, or one that ended lately (`ended_at`) after saying its progress."""

    job_id: str
    type: str
    queue: str
    started_at: datetime
    progress: Progress | None = None  # the last the job said; None: it said nothing
    ended_at: datetime | None = None  # None: it runs now

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> RunningJob:
        progress = fields.get("progress")
        ended_at = fields.get("ended_at")
        return cls(
            fields["job_id"],
            fields["type"],
            fields["queue"],
            instant(fields["started_at"]),
            Progress(**progress) if progress is not None else None,
            instant(ended_at) if ended_at is not None else None,
        )

    def to_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["started_at"] = self.started_at.isoformat()
        fields["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        return fields


@dataclass(frozen=True, slots=True)
class OutboxLag:
    """What an outbox relay's heartbeat tells besides: the lag it read from its table."""

    pending: int  # rows of the namespace not yet published
    oldest: datetime | None  # when the oldest of them was enqueued; None: none is pending
    leading: bool  # this relay publishes (the others stand by)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> OutboxLag:
        oldest = fields.get("oldest")
        return cls(int(fields["pending"]), instant(oldest) if oldest else None, fields["leading"])


@dataclass(frozen=True, slots=True)
class Heartbeat:
    worker: str
    host: str
    pid: int
    subscription: str  # the subscription the worker serves
    queues: tuple[str, ...]
    concurrency: int
    busy: int  # jobs running now
    processed: int  # jobs settled since start: done, retried, dead, expired or cancelled
    failed: int  # runs that failed: retried or dead
    rss_bytes: int | None
    state: WorkerState
    started_at: datetime
    sent_at: datetime
    interval: float  # seconds until the next heartbeat
    running: tuple[RunningJob, ...] = ()  # the longest running first, RUNNING_SHOWN at most
    held_by_limit: int = 0  # jobs waiting for a concurrency slot (limits.py)
    ended: tuple[RunningJob, ...] = ()  # ended lately with a progress, the latest last
    outbox: OutboxLag | None = None  # set by outbox relays, which beat here too (not workers)

    def encode(self) -> bytes:
        return encode_record(asdict(self))  # the running jobs as their fields, instants as text

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        """Raises ValueError for a message that is no heartbeat."""
        return decode_record(data, "heartbeat", cls._of_fields)

    @classmethod
    def _of_fields(cls, fields: dict[str, Any]) -> Heartbeat:
        if "group" in fields:  # sent by workers of earlier versions
            fields.setdefault("subscription", fields.pop("group"))
        fields["queues"] = tuple(fields["queues"])
        fields["started_at"] = instant(fields["started_at"])
        fields["sent_at"] = instant(fields["sent_at"])
        fields["running"] = tuple(map(RunningJob.from_fields, fields.get("running", ())))
        fields["ended"] = tuple(map(RunningJob.from_fields, fields.get("ended", ())))
        outbox = fields.get("outbox")
        fields["outbox"] = OutboxLag.from_fields(outbox) if outbox else None
        known = {field.name for field in dataclass_fields(cls)}  # newer workers tell more
        return cls(**{name: value for name, value in fields.items() if name in known})

    def seen_at(self, now: datetime) -> SeenState:
        """The state an operator should see: the reported one, unless the worker is gone."""
        silent_for = now - self.sent_at
        if self.state != "stopped" and silent_for > timedelta(
            seconds=GONE_AFTER_BEATS * self.interval
        ):
            return "gone"
        return self.state

    def with_changes(self, **changes: Any) -> Heartbeat:
        return replace(self, **changes)


def read_heartbeats(client: pulsar.Client, topic: str) -> dict[str, Heartbeat]:
    """The latest heartbeat of every worker on the topic (a tombstone forgets a worker)."""
    reader = client.create_reader(topic, pulsar.MessageId.earliest, is_read_compacted=True)
    latest: dict[str, Heartbeat] = {}
    try:
        while reader.has_message_available():
            message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
            key, data = message.partition_key(), message.data()
            if not data:
                latest.pop(key, None)
                continue
            try:
                latest[key] = Heartbeat.decode(data)
            except ValueError:
                continue  # not ours: someone else wrote to the topic
    finally:
        reader.close()
    return latest


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux), else its peak; None where neither is known."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if not peak:
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
