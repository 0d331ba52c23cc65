"""Cancelled jobs, and "run now" for a scheduled or retrying job.

Pulsar cannot delete one message, so a cancel is a mark (marks.py) on the topic
`pulsarjobs-cancelled`, keyed by job id, saying when the job was cancelled. Every worker follows
the topic and keeps the marks in memory. A delivered job whose id is marked and that was created
at or before the cancel is acknowledged without running (outcome `cancelled`); retries keep their
job's creation time, so they are dropped too, while a copy made after the cancel — a run-now
copy, or the same id enqueued again — runs. A job running when its cancel arrives is cancelled
too: an async run is stopped, a sync one (a thread cannot be stopped) runs on and its result is
discarded. Marks are kept for good: one small message per cancelled id.

Run now cancels a waiting job, enqueues a copy created after the cancel and acknowledges the
waiting message (ackers.py), so that a second run now finds nothing to copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import NotDueLater, NotFound
from pulsarjobs.operations.ackers import Ackers
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.transport import marks
from pulsarjobs.transport.backlog import (
    Position,
    parse_position,
    partition_holding,
    read_at,
    subscription_cursor,
)
from pulsarjobs.transport.connection import Connection, client_errors
from pulsarjobs.transport.topics import cancelled_topic, topics_for
from pulsarjobs.wire.envelope import Envelope, encode
from pulsarjobs.wire.records import decode_record, encode_record, instant

RUN_NOW_META = "pulsarjobs-run-now-at"
_RUNNING_NOW = threading.Lock()


@dataclass(frozen=True, slots=True)
class Cancel:
    """A cancelled job id: jobs with this id created at or before `cancelled_at` do not run."""

    job_id: str
    cancelled_at: datetime
    by: str

    def encode(self) -> bytes:
        return encode_record(
            {"job_id": self.job_id, "cancelled_at": self.cancelled_at, "by": self.by}
        )

    @classmethod
    def decode(cls, data: bytes) -> Cancel:
        """Raises ValueError for a message that is no cancel."""
        cancel = decode_record(
            data, "cancel", lambda f: cls(f["job_id"], instant(f["cancelled_at"]), f["by"])
        )
        if cancel.cancelled_at.utcoffset() is None:
            raise ValueError("not a cancel: cancelled_at has no time zone")
        return cancel


def cancel(
    connection: Connection, job_id: str, *, by: str | None = None, at: datetime | None = None
) -> Cancel:
    """Cancel every job with this id created until now (or `at`); returns once the broker has
    stored it."""
    if not job_id:
        raise ValueError("give the id of the job to cancel")
    mark = Cancel(job_id, at or utc_now(), by or marks.who())
    connection.put_mark(cancelled_topic(connection.settings), job_id, mark.encode())
    return mark


def cancelled_jobs(connection: Connection) -> dict[str, Cancel]:
    """Every cancel of the namespace, by job id."""
    found = {}
    for job_id, data in marks.read(connection, cancelled_topic(connection.settings)).items():
        try:
            found[job_id] = Cancel.decode(data)
        except ValueError:
            continue  # not ours: someone else wrote to the topic
    return found


def run_now(inspector: Inspector, queue: str, message_id: str) -> str:
    """Run a scheduled or retrying job of `queue` now: cancel the waiting message's job, enqueue
    a copy of it, due now and created after the cancel, and acknowledge the waiting message, so
    that the copy runs once and the original never does. `message_id` is the message's
    "ledger:entry" on the queue's topic or on the subscription's retry topic. Returns the job
    id; raises NotFound when no job waits there to run (it ran already, was never there, or
    was cancelled or run now already: a copy would bring it back, or run it twice), NotDueLater
    for a job due already: it waits for a worker or runs, and a copy would run it a second
    time. One at a time in a process: a second for the same job finds it acknowledged."""
    position = parse_position(message_id)
    topics = topics_for(inspector.settings, queue)
    with _RUNNING_NOW:
        for topic in (topics.jobs, topics.retry):
            holder = partition_holding(inspector.admin, topic, position)
            waiting = _waiting_job(inspector, holder, position) if holder else None
            if waiting is not None:
                break
        else:
            raise NotFound(
                f"No job waits as message {message_id} in queue {queue!r}: it ran already, or "
                "the id is not one of this queue's."
            )
        message, envelope = waiting
        mark = cancelled_jobs(inspector.connection).get(envelope.id)
        if mark is not None and envelope.created_at <= mark.cancelled_at:
            raise NotFound(
                f"Job {envelope.id} was cancelled (or run now) already: it never runs, and run "
                "now would bring it back."
            )
        if envelope.run_at is None or envelope.run_at <= utc_now():
            raise NotDueLater(
                f"Job {envelope.id} is due already: it runs as soon as a worker takes it (or "
                "runs now). Run now is for jobs due later."
            )
        run_copy_now(inspector, queue, envelope)
        with Ackers(inspector) as ackers:
            ackers.acknowledge(message)
    return envelope.id


def run_copy_now(inspector: Inspector, queue: str, envelope: Envelope) -> None:
    """Cancel the job and enqueue a copy of it due now, created after the cancel: the copy runs
    once, the original never."""
    mark = cancel(inspector.connection, envelope.id)
    copy = envelope.replace(
        run_at=None,
        created_at=just_after(mark.cancelled_at),
        meta={**envelope.meta, RUN_NOW_META: mark.cancelled_at.isoformat()},
    )
    topics, settings = topics_for(inspector.settings, queue), inspector.settings
    with client_errors(settings.service_url, f"publishing to {topics.jobs}"):
        inspector.connection.prepare_queue(topics.jobs, settings.subscription)
    acks = inspector.job_index.acks(copy.id, queue, topics.jobs)
    inspector.connection.publish(topics.jobs, encode(copy), acks=acks).result()


def just_after(at: datetime) -> datetime:
    """The first creation time a job may have that a cancel at `at` does not cancel: creation
    times are stored to the millisecond, so one later."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000) + timedelta(milliseconds=1)


def _waiting_job(
    inspector: Inspector, topic: str, position: Position
) -> tuple[pulsar.Message, Envelope] | None:
    """The message at `position` on `topic` and its job, if the subscription has not
    acknowledged it."""
    settings = inspector.settings
    cursor = subscription_cursor(inspector.admin, topic, settings.subscription)
    if cursor is None or cursor.is_acked(position):
        return None
    message = read_at(
        inspector.admin, inspector.client, settings.service_url, topic, position, inspector.crypto
    )
    envelope = inspector.envelope_of(message) if message is not None else None
    return None if message is None or envelope is None else (message, envelope)
