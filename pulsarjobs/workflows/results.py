"""Job results: the return value, or the final error, of jobs that keep theirs.

A job declared (or enqueued) with `keep_result` carries it in its envelope. The worker that
settles it for good — done, dead-lettered for any reason, expired or cancelled; not a retry —
publishes a `JobResult` (schemas/job_result.avsc) to the namespace's topic
`pulsarjobs-results`, keyed by job id, and acknowledges the job only once the broker has
stored it. A return value that is no job argument is kept as a failure that says so: the job
ran, and running it again would return the same. A chain link that fails for good also fails
the chain's result, kept under the last link's id.

Why a topic and not a table: Pulsar has no lookup by key, but a topic read from its start is
read fast, and each process reads it once (result_reader.py). The topic keeps its messages for
the longest `keep_result` asked for (a subscription that never acknowledges, and a message TTL
on the topic that the broker enforces: past it, messages are acknowledged for that
subscription and deleted with their ledger). Each result carries its own `expires_at`, which
readers honour to the millisecond: shorter retentions end on time though the topic keeps
bytes longer. Compaction with tombstones was the other way: it needs someone to write each
tombstone at the right time, and deletes nothing until the next compaction either.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import fastavro
import structlog

from pulsarjobs.errors import JobFailed, PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.transport.topics import results_topic
from pulsarjobs.wire.envelope import Envelope, JobError
from pulsarjobs.wire.records import decode_record
from pulsarjobs.wire.result_schema import PARSED_RESULT_SCHEMA as _PARSED
from pulsarjobs.wire.values import JobArg, Unencodable, from_value, to_value, unwritable

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView
    from pulsarjobs.wire.verdicts import Outcome

log = structlog.get_logger("pulsarjobs.results")


@dataclass(frozen=True, slots=True)
class JobResult:
    """A job's return value (`error` None), or the error it failed with for good."""

    job_id: str
    type: str
    settled_at: datetime
    expires_at: datetime
    value: JobArg = None
    error: JobError | None = None

    def get(self) -> JobArg:
        """The value; JobFailed for a failure."""
        if self.error is None:
            return self.value
        error = self.error
        raise JobFailed(self.job_id, error.type, error.message, error.traceback)

    def encode(self) -> bytes:
        """Raises Unencodable for a value that is no job argument."""
        error = None if self.error is None else dataclasses.asdict(self.error)
        stream = io.BytesIO()
        try:
            record = {
                "job_id": self.job_id,
                "type": self.type,
                "settled_at": self.settled_at,
                "expires_at": self.expires_at,
                "value": None if self.error is not None else to_value(self.value),
                "error": error,
            }
            fastavro.schemaless_writer(stream, _PARSED, record)
        except (UnicodeEncodeError, RecursionError) as exc:
            raise unwritable(exc) from None
        return stream.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> JobResult:
        """Raises ValueError for a message that is no result."""
        return decode_record(data, "job result", cls._of_record, parse=_avro, errors=(Exception,))

    @classmethod
    def _of_record(cls, record: Any) -> JobResult:
        error, value = record["error"], record["value"]
        return cls(
            job_id=record["job_id"],
            type=record["type"],
            settled_at=record["settled_at"],
            expires_at=record["expires_at"],
            value=None if value is None else from_value(value),
            error=None if error is None else JobError(**error),
        )


def _avro(data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), _PARSED, None)


def kept(outcome: Outcome, now: datetime, worker: str, max_size: int) -> list[JobResult]:
    """The results to store once `outcome` settled a job: its own, if it keeps one, and, for a
    chain link that failed, the chain's (under its last link's id)."""
    envelope, policy = outcome.envelope, outcome.kind.policy
    if not policy.over:
        return []
    results = []
    if envelope.keep_result is not None:
        if policy.succeeded:
            results.append(succeeded(envelope, outcome.value, now, worker, max_size))
        else:
            results.append(failed(envelope, envelope, outcome, now, worker))
    chain = envelope.chain
    if not policy.succeeded and chain is not None and chain.next:
        last = chain.next[-1]
        if last.keep_result is not None:
            results.append(failed(last, envelope, outcome, now, worker, f"{chain.where}: "))
    return results


def succeeded(
    envelope: Envelope, value: Any, now: datetime, worker: str, max_size: int
) -> JobResult:
    """The value kept, or a failure saying why it cannot be."""
    assert envelope.keep_result is not None
    expires_at = now + timedelta(seconds=envelope.keep_result)
    result = JobResult(envelope.id, envelope.type, now, expires_at, value)
    try:
        size = len(result.encode())
    except Unencodable as exc:
        reason = (
            f"{exc.to_argument_error('the return value')}; a result is what a job argument may be"
        )
        return dataclasses.replace(
            result, value=None, error=_error("UnencodableResult", reason, now, worker)
        )
    if size > max_size:
        reason = f"the return value takes {size} bytes, more than the {max_size} the broker accepts"
        return dataclasses.replace(
            result, value=None, error=_error("ResultTooLarge", reason, now, worker)
        )
    return result


def failed(
    envelope: Envelope,
    ran: Envelope,
    outcome: Outcome,
    now: datetime,
    worker: str,
    prefix: str = "",
) -> JobResult:
    """`envelope`'s result: the failure of `ran` (itself, or a chain link before it)."""
    assert envelope.keep_result is not None
    error_type = outcome.kind.policy.result_error  # "": the error the job failed with
    error = None if error_type else ran.last_error
    if error is None:
        reason = outcome.reason or f"the job {outcome.kind}"
        error = _error(error_type or outcome.kind.capitalize(), reason, now, worker)
    if prefix:
        error = dataclasses.replace(error, message=f"{prefix}{ran.type} failed: {error.message}")
    expires_at = now + timedelta(seconds=envelope.keep_result)
    return JobResult(envelope.id, envelope.type, now, expires_at, error=error)


def _error(kind: str, message: str, now: datetime, worker: str) -> JobError:
    return JobError(f"pulsarjobs.{kind}", message, "", now, worker)


def prepare(app: AppView) -> None:
    """At a worker's start, when a job it knows keeps its result: the results topic kept and
    its producer made now, not while the first results wait for them."""
    longest = max((job.keep_result for job in app.jobs.values() if job.keep_result), default=None)
    if longest is None:
        return
    topic = results_topic(app.settings)
    try:
        app.connection.keep_results(topic, longest.total_seconds())
        app.connection.producer(topic)
    except PulsarJobsError as exc:  # results are stored anyway, preparing them then
        log.warning("cannot prepare the results topic yet", topic=topic, error=error_text(exc))
