"""Dead letters back to work (replay) or away for good (purge).

Both read the dead-letter subscription's backlog in order (backlog.py) and acknowledge what they
handle through a consumer that is never handed a message. Dead letters the filter does not pick
are not touched, so they stay; and the read ends where the topic ended when it began, so it
never loops over them.

A replay publishes each picked job to its queue and acknowledges the dead letter only once the
broker has stored the copy: killed in between, the job is both back and still dead, and a naive
re-run would run it twice. The broker's de-duplication rules that out. The destination topic
gets de-duplication turned on; the replay publishes as a producer whose name is fixed by the
dead-letter topic, the destination and the filters as written; and each copy's sequence id is
its dead letter's position, published strictly in position order. The broker remembers the
highest sequence id it stored for that name and tells a re-run when it connects; every picked
dead letter at or before it was published by an interrupted run (a run publishes all the ones
it picks, in order), so the re-run acknowledges it without publishing it again.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import BrokerError, NotFound
from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.transport.answers import SEND_TIMEOUT_MS
from pulsarjobs.transport.backlog import position_of
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.job_index import JobIndex
from pulsarjobs.transport.schema_registry import pulsar_schema
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import DEAD_LETTER_SUBSCRIPTION, check_queue_name, topics_for
from pulsarjobs.wire.envelope import Envelope, encode

WINDOW = 500  # copies awaiting the broker's ack at once
DEDUP_WAIT_SECONDS = 15.0

Progress = Callable[[int], None]  # told how many more dead letters were read


@dataclass(frozen=True, slots=True)
class Moved:
    matched: int  # dead letters the filter picked
    moved: int  # replayed (or purged; or run now, cancelled, killed: bulk_jobs.py) by this run
    resumed: int  # replayed by an interrupted run: only acknowledged by this one
    skipped: int  # left in place: not job envelopes, or batched messages


@dataclass
class _Tally:
    matched: int = 0
    moved: int = 0
    resumed: int = 0
    skipped: int = 0

    def result(self) -> Moved:
        return Moved(self.matched, self.moved, self.resumed, self.skipped)


def replay(
    inspector: Inspector,
    queue: str,
    matching: DeadLetterFilter,
    *,
    to_queue: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Moved:
    """Send the picked dead letters of `queue` back to it (or to `to_queue`) as new jobs."""
    destination_queue = check_queue_name(to_queue or queue)
    settings = inspector.settings
    tally = _Tally()
    with _exclusive(inspector, queue, dry_run) as acker:
        sender = None
        if acker is not None:
            destination = topics_for(settings, destination_queue).jobs
            sender = _Sender.open(inspector, queue, destination, matching, acker, tally)
            sender.indexed = (inspector.job_index, destination_queue, destination)
        try:
            for message_id, letter in _picked(inspector, queue, matching, tally, progress):
                sequence = sequence_id(message_id)
                copy = _copy(letter, destination_queue, settings.max_payload)
                if copy is None or sequence is None:
                    tally.skipped += 1  # left in the dead letters, by this run and any re-run
                elif sender is not None:
                    sender.send(copy, sequence, message_id, letter.job_id)
            if sender is not None:
                sender.drain()
        finally:
            if sender is not None:
                sender.close()
    return tally.result()


def purge(
    inspector: Inspector,
    queue: str,
    matching: DeadLetterFilter,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Moved:
    """Acknowledge the picked dead letters of `queue`: they are gone for good."""
    tally = _Tally()
    with _exclusive(inspector, queue, dry_run) as acker:
        for message_id, _ in _picked(inspector, queue, matching, tally, progress):
            if acker is not None:
                acker.acknowledge(message_id)
                tally.moved += 1
    return tally.result()


def back_to_work(envelope: Envelope, queue: str, now: datetime) -> Envelope:
    """The job as new: attempt 1, due now, no last error. The error it died of and when it was
    replayed stay in `meta`, for the handler and the logs."""
    meta = {**envelope.meta, "pulsarjobs-replayed-at": now.isoformat()}
    if envelope.last_error is not None:
        meta["pulsarjobs-replayed-error"] = envelope.last_error.summary[:1000]
    return envelope.replace(queue=queue, attempt=1, run_at=None, last_error=None,
                            earlier_errors=(), meta=meta)  # fmt: skip


def sequence_id(message_id: pulsar.MessageId) -> int | None:
    """The dead letter's position as a sequence id that grows with it; None for a message in
    a batch or out of range, which a replay leaves where it is."""
    ledger, entry = int(message_id.ledger_id()), int(message_id.entry_id())
    if message_id.batch_index() != -1 or not (0 <= ledger < 2**31 and 0 <= entry < 2**32):
        return None
    return ledger << 32 | entry


def producer_name(dead_topic: str, destination: str, matching: DeadLetterFilter) -> str:
    """The same for the same command: what lets a re-run resume an interrupted replay."""
    key = f"{dead_topic}\n{destination}\n{matching.identity()}".encode()
    return f"pulsarjobs-replay-{hashlib.sha256(key).hexdigest()[:20]}"


# -- inside ------------------------------------------------------------------------------------


@contextmanager
def _exclusive(inspector: Inspector, queue: str, dry_run: bool) -> Iterator[pulsar.Consumer | None]:
    """A consumer to acknowledge with, once nobody else holds the dead-letter subscription: two
    runs at once could purge what the other replays. None for a dry run, or a queue without
    dead letters (subscribing would create its topic)."""
    topic = topics_for(inspector.settings, queue).dead
    try:
        stats = inspector.admin.stats(topic)
    except NotFound:
        stats = None
    if dry_run or stats is None:
        yield None
        return
    holders = len(subscription_of(stats, DEAD_LETTER_SUBSCRIPTION).get("consumers", []))
    if holders:
        raise BrokerError(
            f"Another replay or purge of queue {queue!r} is running ({holders} consumer(s) on "
            f"subscription {DEAD_LETTER_SUBSCRIPTION}); wait for it to finish."
        )
    with client_errors(inspector.settings.service_url, f"subscribing to {topic}"):
        acker = inspector.client.subscribe(
            topic,
            DEAD_LETTER_SUBSCRIPTION,
            consumer_type=pulsar.ConsumerType.Shared,
            receiver_queue_size=0,  # it only acknowledges: never let the broker hand it one
            batch_index_ack_enabled=True,
        )
    try:
        yield acker
    finally:
        acker.close()  # sends the acknowledgements still grouped in the client


def _picked(
    inspector: Inspector,
    queue: str,
    matching: DeadLetterFilter,
    tally: _Tally,
    progress: Progress | None,
) -> Iterator[tuple[pulsar.MessageId, DeadLetter]]:
    span = matching.span()  # a filter by positions reads only from the first to the last
    after = (span[0][0], span[0][1] - 1) if span else None
    for message_id, letter in inspector.scan_dead_letters(queue, matching, after):
        if span and position_of(message_id) > span[1]:
            break
        if progress is not None:
            progress(1)
        if letter is not None:
            tally.matched += 1
            yield message_id, letter


def _copy(letter: DeadLetter, queue: str, max_size: int) -> bytes | None:
    """The job to publish again; None for a message that was no job, or too large now."""
    if letter.envelope is None:
        return None
    data = encode(back_to_work(letter.envelope, queue, utc_now()))
    return data if len(data) <= max_size else None


class _Sender:
    """Publishes copies in order, a window of them at a time, and acknowledges each dead
    letter once the broker has stored its copy."""

    def __init__(self, producer: pulsar.Producer, acker: pulsar.Consumer, tally: _Tally) -> None:
        self.producer = producer
        self.acker = acker
        self.tally = tally
        self.already = producer.last_sequence_id()  # stored by an interrupted run
        self.key = producer.producer_name()
        self.pending: deque[tuple[Future[None], pulsar.MessageId]] = deque()
        self.indexed: tuple[JobIndex, str, str] | None = None  # the index, queue and topic

    @classmethod
    def open(
        cls,
        inspector: Inspector,
        queue: str,
        destination: str,
        matching: DeadLetterFilter,
        acker: pulsar.Consumer,
        tally: _Tally,
    ) -> _Sender:
        settings = inspector.settings
        with client_errors(settings.service_url, f"preparing {destination}"):
            inspector.connection.prepare_queue(destination, settings.subscription)
        _deduplicate(inspector, destination)
        name = producer_name(topics_for(settings, queue).dead, destination, matching)
        try:
            with client_errors(settings.service_url, f"publishing to {destination}"):
                producer = inspector.client.create_producer(
                    destination,
                    producer_name=name,
                    schema=pulsar_schema(),
                    batching_enabled=False,
                    block_if_queue_full=True,
                    send_timeout_millis=SEND_TIMEOUT_MS,
                )
        except BrokerError as exc:
            if isinstance(exc.__cause__, pulsar.ProducerBusy):
                raise BrokerError("The same replay is already running elsewhere.") from exc
            raise
        return cls(producer, acker, tally)

    def send(self, data: bytes, sequence: int, message_id: pulsar.MessageId, job_id: str) -> None:
        if sequence <= self.already:
            self.acker.acknowledge(message_id)
            self.tally.resumed += 1
            return
        stored: Future[None] = Future()

        def acked(result: Any, copy_id: Any) -> None:
            if result == pulsar.Result.Ok:
                if self.indexed is not None:  # where the job is now (job_index.py)
                    index, queue, topic = self.indexed
                    index.note((job_id, queue, topic, copy_id))
                stored.set_result(None)
            else:
                stored.set_exception(BrokerError(f"the broker refused a replayed job: {result}"))

        # One partition of a partitioned queue for all copies (the key names it): the broker
        # de-duplicates per partition, and keeps order, which `already` counts on, only there.
        self.producer.send_async(data, acked, sequence_id=sequence, partition_key=self.key)
        self.pending.append((stored, message_id))
        # Acknowledge as copies are stored; wait only when the window is full.
        while self.pending and (self.pending[0][0].done() or len(self.pending) >= WINDOW):
            self._settle_oldest()

    def drain(self) -> None:
        while self.pending:
            self._settle_oldest()

    def close(self) -> None:
        self.producer.close()

    def _settle_oldest(self) -> None:
        """On a failure, stop: the broker stores a producer's messages in order, so no copy
        after it was stored, and the same command resumes from there."""
        stored, message_id = self.pending.popleft()
        try:
            stored.result()
        except BrokerError as exc:
            raise BrokerError(
                f"Replay stopped after {self.tally.moved} jobs: {exc}. Run the same command "
                "again to resume; no job will be replayed twice."
            ) from exc
        self.acker.acknowledge(message_id)
        self.tally.moved += 1


def _deduplicate(inspector: Inspector, topic: str) -> None:
    """Turn de-duplication on for the topic and wait until the broker applies it."""
    admin = inspector.admin
    if admin.deduplicating(topic):
        return
    admin.enable_deduplication(topic)
    deadline = time.monotonic() + DEDUP_WAIT_SECONDS
    while not admin.deduplicating(topic):
        if time.monotonic() > deadline:
            raise BrokerError(
                f"The broker did not turn de-duplication on for {topic} within "
                f"{DEDUP_WAIT_SECONDS:.0f} s; a replay needs it (are topic policies enabled?)."
            )
        time.sleep(0.1)
