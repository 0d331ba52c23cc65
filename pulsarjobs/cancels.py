"""Cancelled jobs, and "run now" for a scheduled or retrying job.

Pulsar cannot delete one message, so a cancel is a mark (marks.py) on the topic
`pulsarjobs-cancelled`, keyed by job id, saying when the job was cancelled. Every worker follows
the topic and keeps the marks in memory. A delivered job whose id is marked and that was created
at or before the cancel is acknowledged without running (outcome `cancelled`); retries keep their
job's creation time, so they are dropped too, while a copy made after the cancel — a run-now
copy, or the same id enqueued again — runs. A job running when its cancel arrives is cancelled
too: an async run is stopped, a sync one (a thread cannot be stopped) runs on and its result is
discarded. Marks are kept for good: one small message per cancelled id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pulsar

from pulsarjobs import marks
from pulsarjobs.backlog import Cursor, partition_holding, position_of
from pulsarjobs.clock import utc_now
from pulsarjobs.connection import Connection, client_errors
from pulsarjobs.dead_letters import writer_schema
from pulsarjobs.envelope import Envelope, EnvelopeError, decode, encode
from pulsarjobs.errors import NotFound
from pulsarjobs.inspect import Inspector
from pulsarjobs.schema_registry import WriterSchemas
from pulsarjobs.topics import cancelled_topic, topics_for

READ_TIMEOUT_MS = 5_000
RUN_NOW_META = "pulsarjobs-run-now-at"


@dataclass(frozen=True, slots=True)
class Cancel:
    """A cancelled job id: jobs with this id created at or before `cancelled_at` do not run."""

    job_id: str
    cancelled_at: datetime
    by: str

    def encode(self) -> bytes:
        fields = {
            "job_id": self.job_id,
            "cancelled_at": self.cancelled_at.isoformat(),
            "by": self.by,
        }
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Cancel:
        """Raises ValueError for a message that is no cancel."""
        try:
            fields = json.loads(data)
            at = datetime.fromisoformat(fields["cancelled_at"])
            if at.utcoffset() is None:
                raise ValueError("not a cancel: cancelled_at has no time zone")
            return cls(fields["job_id"], at, fields["by"])
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a cancel: {exc}") from exc


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
    """Run a scheduled or retrying job of `queue` now: cancel the waiting message's job and
    enqueue a copy of it, due now and created after the cancel, so that the copy runs once and
    the original never does. `message_id` is the message's "ledger:entry" on the queue's topic
    or on the subscription's retry topic. Returns the job id; raises NotFound when the message
    is no longer waiting (it ran already, or was never there)."""
    position = parse_message_id(message_id)
    topics = topics_for(inspector.settings, queue)
    for topic in (topics.jobs, topics.retry):
        holder = partition_holding(inspector.admin, topic, position)
        envelope = _waiting_job(inspector, holder, position) if holder else None
        if envelope is not None:
            break
    else:
        raise NotFound(
            f"No job waits as message {message_id} in queue {queue!r}: it ran already, or the id "
            "is not one of this queue's."
        )
    mark = cancel(inspector.connection, envelope.id)
    # Creation times are stored to the millisecond: one later than the cancel, the copy runs.
    created = mark.cancelled_at.replace(microsecond=mark.cancelled_at.microsecond // 1000 * 1000)
    copy = envelope.replace(
        run_at=None,
        created_at=created + timedelta(milliseconds=1),
        meta={**envelope.meta, RUN_NOW_META: mark.cancelled_at.isoformat()},
    )
    settings = inspector.settings
    with client_errors(settings.service_url, f"publishing to {topics.jobs}"):
        inspector.connection.prepare_queue(topics.jobs, settings.subscription)
    inspector.connection.publish(topics.jobs, encode(copy)).result()
    return envelope.id


def parse_message_id(message_id: str) -> tuple[int, int]:
    """(ledger, entry) of a "ledger:entry" message id."""
    ledger, colon, entry = message_id.strip().partition(":")
    try:
        if not colon:
            raise ValueError
        return int(ledger), int(entry)
    except ValueError:
        raise ValueError(f"{message_id!r} is no message id: give it as ledger:entry") from None


def _waiting_job(inspector: Inspector, topic: str, position: tuple[int, int]) -> Envelope | None:
    """The job at `position` on `topic`, if the subscription has not acknowledged it."""
    try:
        cursors = inspector.admin.internal_stats(topic)["cursors"]
    except NotFound:
        return None
    cursor = cursors.get(inspector.settings.subscription)
    if cursor is None or Cursor.parse(cursor).is_acked(position):
        return None
    start = pulsar.MessageId(ledger_id=position[0], entry_id=position[1])
    with client_errors(inspector.settings.service_url, f"reading {topic}"):
        reader = inspector.client.create_reader(topic, start, start_message_id_inclusive=True)
        try:
            message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
        except pulsar.Timeout:
            return None
        finally:
            reader.close()
    if position_of(message.message_id()) != position:
        return None  # no such message here: the reader started at the next one
    try:
        return decode(message.data(), writer_schema(WriterSchemas(inspector.settings), message))
    except EnvelopeError:
        return None
