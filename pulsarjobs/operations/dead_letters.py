"""Dead letters as operators see them, and the filters that pick some of them.

A dead letter is a message on a queue's dead-letter topic: the job's envelope with its last
error, and properties saying why it died (see docs/concepts.md). A message that was no job at
all keeps its original bytes. Pulsar's own dead-letter policy (the backstop for jobs that crash
the worker) writes none of our properties; what it knows comes from the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pulsar

from pulsarjobs.transport.backlog import Position, parse_position
from pulsarjobs.transport.schema_registry import NOT_LOOKED_UP, WriterSchemas
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.workflows import chains

CRASH_REASON = "redelivered too often without a verdict (did it crash the worker?)"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    job_id: str
    job_type: str
    reason: str
    error: str  # "Type: message" of the last failure
    dead_at: datetime  # when it reached the dead-letter topic
    origin_topic: str
    message_id: str  # its place on the dead-letter topic, "ledger:entry"
    envelope: Envelope | None  # None when the message was no job envelope
    raw: bytes | None = None  # the original bytes of a message that was no job envelope

    @property
    def attempts(self) -> int | None:
        return self.envelope.attempt if self.envelope is not None else None


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters a command is about; an empty filter takes them all."""

    job_type: str | None = None
    error: str | None = None  # a piece of the error or the reason, in any case
    since: datetime | None = None  # dead-lettered at or after
    since_text: str | None = None  # `since` as the user wrote it, e.g. "2h"
    message_ids: frozenset[str] | None = None  # only these, by position ("ledger:entry")
    job_ids: frozenset[str] | None = None  # only dead letters of these jobs

    def matches(self, letter: DeadLetter) -> bool:
        if self.message_ids is not None and letter.message_id not in self.message_ids:
            return False
        if self.job_ids is not None and letter.job_id not in self.job_ids:
            return False
        if self.job_type is not None and letter.job_type != self.job_type:
            return False
        if self.error is not None:
            needle = self.error.lower()
            if needle not in letter.error.lower() and needle not in letter.reason.lower():
                return False
        return self.since is None or letter.dead_at >= self.since

    def identity(self) -> str:
        """The filter as written: the same command run again has the same identity. (Without
        ids it reads as it did before they existed: an interrupted replay resumes.)"""
        written: tuple[object, ...] = (self.job_type, self.error, self.since_text)
        if self.message_ids is not None or self.job_ids is not None:
            written += (_sorted(self.message_ids), _sorted(self.job_ids))
        return repr(written)

    def span(self) -> tuple[Position, Position] | None:
        """The first and last positions that can match, when the filter names them: a scan
        needs to read no further."""
        if self.message_ids is None:
            return None
        positions = sorted(parse_position(text) for text in self.message_ids)
        return (positions[0], positions[-1]) if positions else None


def _sorted(ids: frozenset[str] | None) -> list[str] | None:
    return None if ids is None else sorted(ids)


def dead_letter_properties(
    envelope: Envelope, reason: str, origin_topic: str, origin_message_id: str
) -> dict[str, str]:
    """What a dead letter says of itself, beside its job: why it died, its last error, where
    from (a worker's, or a kill's). A filter reads these without decoding the job."""
    error, chain = envelope.last_error, envelope.chain
    properties = {
        "pulsarjobs-reason": reason if chain is None else f"{reason} ({chain.where})",
        "pulsarjobs-error": error.summary[:1000] if error else "",
        "pulsarjobs-job-id": envelope.id,
        "pulsarjobs-job-type": envelope.type,
        "pulsarjobs-origin-topic": origin_topic,
        "pulsarjobs-origin-message-id": origin_message_id,
    }
    if chain is not None:  # the chain stops here: say which link
        properties.update(chains.dead_letter_properties(chain))
    return properties


def read_dead_letter(message: pulsar.Message, schemas: WriterSchemas) -> DeadLetter:
    head, _ = _head(message)
    return _completed(head, message, schemas)


def pick_dead_letter(
    message: pulsar.Message, schemas: WriterSchemas, matching: DeadLetterFilter
) -> DeadLetter | None:
    """The dead letter when `matching` picks it, else None. A worker's dead letter says all a
    filter asks in its properties, so its job is decoded only once picked: decoding is most of
    what a search over many dead letters costs."""
    head, told = _head(message)
    if told and not matching.matches(head):
        return None
    letter = _completed(head, message, schemas)
    return letter if matching.matches(letter) else None


def _head(message: pulsar.Message) -> tuple[DeadLetter, bool]:
    """What the message's properties say, without its job; True when they say all a filter
    asks (a worker wrote them)."""
    properties = message.properties()
    message_id = message.message_id()
    head = DeadLetter(
        job_id=properties.get("pulsarjobs-job-id", ""),
        job_type=properties.get("pulsarjobs-job-type", ""),
        reason=properties.get("pulsarjobs-reason", CRASH_REASON),
        error=properties.get("pulsarjobs-error", ""),
        dead_at=datetime.fromtimestamp(message.publish_timestamp() / 1000, UTC),
        origin_topic=properties.get("pulsarjobs-origin-topic") or properties.get("REAL_TOPIC", ""),
        message_id=f"{message_id.ledger_id()}:{message_id.entry_id()}",
        envelope=None,
    )
    told = "pulsarjobs-reason" in properties and bool(head.job_id and head.job_type)
    return head, told


def _completed(head: DeadLetter, message: pulsar.Message, schemas: WriterSchemas) -> DeadLetter:
    """The dead letter with its job, and what the job tells that the properties did not."""
    try:
        envelope = decode(message.data(), writer_schema(schemas, message))
    except EnvelopeError:
        return replace(head, raw=message.data())
    error = envelope.last_error
    return replace(
        head,
        job_id=head.job_id or envelope.id,
        job_type=head.job_type or envelope.type,
        error=head.error or (error.summary if error else ""),
        envelope=envelope,
    )


def writer_schema(schemas: WriterSchemas, message: pulsar.Message) -> str | None:
    """The schema the message was written with, looked up once per topic and version."""
    key = WriterSchemas.key(message.topic_name(), message.schema_version())
    if key is None:
        return None
    schema = schemas.known.get(key, NOT_LOOKED_UP)
    return schemas.fetch(key) if schema is NOT_LOOKED_UP else schema
