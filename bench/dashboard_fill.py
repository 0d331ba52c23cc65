"""The backlog bench/dashboard.py measures under: one queue's waiting, scheduled, retrying and
dead jobs, written as the project writes them (enqueue_many; a worker's retries and dead letters,
each indexed by the job index as a worker's are), a chunk at a time."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta

import pulsar

from pulsarjobs import App
from pulsarjobs.app import JobCall
from pulsarjobs.clock import utc_now
from pulsarjobs.operations.dead_letters import dead_letter_properties
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, JobError, encode
from pulsarjobs.worker.feed import keep_dead_letters

QUEUE = "default"
SEARCHED = "TimeoutError"  # the error of one dead letter in a hundred
CHUNK = 5_000  # jobs per enqueue_many call
LATER = timedelta(hours=6)  # when scheduled jobs and retries come due: not during the bench


def fill_waiting(app: App, count: int) -> list[str]:
    """`count` jobs due now; their ids."""
    return _enqueue(app, count, "waiting", None)


def fill_scheduled(app: App, count: int) -> list[str]:
    return _enqueue(app, count, "scheduled", LATER)


def _enqueue(app: App, count: int, what: str, later: timedelta | None) -> list[str]:
    ids: list[str] = []
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        calls = [JobCall("send_email", args=(f"user{n}@example.com", n), queue=QUEUE)
                 for n in range(first, last)]  # fmt: skip
        ids += app.enqueue_many(calls, in_=later)
        say(f"{what}: {last:,} of {count:,}", end="\r")
    say("")
    return ids


def fill_retries(app: App, count: int) -> list[str]:
    """`count` jobs on the retry topic, each failed once and due again later."""
    topics = topics_for(app.settings, QUEUE)
    earliest = pulsar.InitialPosition.Earliest  # kept for the subscription, as a worker's are
    app.connection.client.subscribe(
        topics.retry, app.settings.subscription, initial_position=earliest
    ).close()
    return _publish(app, count, "retries", lambda n: (failed(app, n, 2), topics.retry, None))


def fill_dead(app: App, count: int) -> list[str]:
    """`count` dead letters, as a worker writes them (envelope, last error, reason, properties)."""
    topics = topics_for(app.settings, QUEUE)
    keep_dead_letters(app.connection.client, topics)

    def letter(n: int) -> Made:
        envelope = failed(app, n, 3)
        reason = "failed 3 times: no attempts left"
        return (
            envelope,
            topics.dead,
            dead_letter_properties(envelope, reason, topics.jobs, f"1:{n}"),
        )

    return _publish(app, count, "dead", letter)


def failed(app: App, n: int, attempt: int) -> Envelope:
    kind = SEARCHED if n % 100 == 0 else "ValueError"
    error = JobError(kind, f"report {n} failed", "Traceback (most recent call last): ...",
                     utc_now(), "bench")  # fmt: skip
    envelope = app.envelope(JobCall("build_report", args=(n,), queue=QUEUE))
    return envelope.replace(attempt=attempt, last_error=error, run_at=utc_now() + LATER)


Made = tuple[Envelope, str, dict[str, str] | None]  # a message: its job, topic, properties


def _publish(app: App, count: int, what: str, make: Callable[[int], Made]) -> list[str]:
    """Retries (no properties: due at their run_at) or dead letters (due at once)."""
    ids: list[str] = []
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        acks = Acks(last - first)
        for n in range(first, last):
            envelope, topic, properties = make(n)
            indexed = app.job_index.acks(envelope.id, QUEUE, topic, acks)
            due = envelope.run_at if properties is None else None
            app.connection.publish(topic, encode(envelope), deliver_at=due,
                                   properties=properties, acks=indexed)  # fmt: skip
            ids.append(envelope.id)
        acks.stored.result()
        say(f"{what}: {last:,} of {count:,}", end="\r")
    say("")
    return ids


def timed(fill: Callable[[App, int], list[str]], app: App, count: int) -> tuple[list[str], float]:
    started = time.perf_counter()
    ids = fill(app, count)
    return ids, time.perf_counter() - started


def say(line: str, end: str = "\n") -> None:
    print(line, end=end, file=sys.stderr, flush=True)
