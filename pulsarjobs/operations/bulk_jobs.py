"""Run now, cancel or kill many waiting jobs at once: those of a queue's scheduled jobs (on its
topic, due later) or of its retries (on the subscription's retry topic), picked by position or
every one there.

The topic's backlog is read once, in order (backlog.py), and each picked job is handled as the
one-job commands handle it (cancels.py). A job already cancelled is left alone: running it now
would bring it back. A kill publishes the job to the queue's dead-letter topic with the
properties a worker writes (dead_letters.py), then cancels the original; the dead letter's job
is created just after that cancel, so that a replay runs it while the original never runs.
Stopped in between, the job is both dead and still waiting: never lost.

Then the original message is acknowledged on the workers' subscription, through a consumer that
is never handed a message (as replay.py acknowledges dead letters), so that it leaves the
Scheduled and Retries lists now rather than when a worker would drop it at its due time. The
cancel stays what keeps it from running: a worker holding it already drops it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.operations.ackers import Ackers
from pulsarjobs.operations.cancels import cancel, cancelled_jobs, just_after, run_copy_now
from pulsarjobs.operations.dead_letters import dead_letter_properties
from pulsarjobs.operations.inspector import Inspector, due_time
from pulsarjobs.operations.replay import Moved, Progress
from pulsarjobs.transport.backlog import parse_position, position_of, position_text, read_backlog
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.topics import DEAD_LETTER_SUBSCRIPTION, topics_for
from pulsarjobs.wire.envelope import Envelope, encode

JobAction = Literal["run-now", "cancel", "kill"]
JOB_ACTIONS: tuple[JobAction, ...] = ("run-now", "cancel", "kill")
JobTopic = Literal["jobs", "retry"]  # where waiting jobs are: the queue's topic, its retry topic
KILL_REASON = "killed from the dashboard"
KILLED_AT_META = "pulsarjobs-killed-at"


@dataclass(frozen=True, slots=True)
class JobPick:
    """Which waiting jobs of a queue: on its topic, those due later (`jobs`), or on its retry
    topic (`retry`); those at `positions` ("ledger:entry"), or every one (None)."""

    where: JobTopic
    positions: frozenset[str] | None = None


def act_on_jobs(
    inspector: Inspector,
    queue: str,
    action: JobAction,
    pick: JobPick,
    *,
    reason: str = KILL_REASON,
    progress: Progress | None = None,
) -> Moved:
    """Run now, cancel or kill the picked jobs; `reason` is a kill's, on its dead letters.
    `moved` counts the jobs acted on; `skipped` those left: no job inside, cancelled already, or
    (for run now) due already, which a copy would run twice."""
    marks = cancelled_jobs(inspector.connection)
    matched = moved = skipped = 0
    with Ackers(inspector) as ackers:
        for message, envelope in _picked(inspector, queue, pick, progress):
            matched += 1
            mark = marks.get(envelope.id) if envelope is not None else None
            if envelope is None or (mark is not None and envelope.created_at <= mark.cancelled_at):
                skipped += 1
                continue
            if action == "cancel":
                cancel(inspector.connection, envelope.id)
            elif action == "kill":
                kill(inspector, queue, envelope, message, reason)
            elif envelope.run_at is not None and envelope.run_at > utc_now():
                run_copy_now(inspector, queue, envelope)
            else:
                skipped += 1  # due already: a copy would run it twice
                continue
            ackers.acknowledge(message)
            moved += 1
    return Moved(matched=matched, moved=moved, resumed=0, skipped=skipped)


def kill(
    inspector: Inspector, queue: str, envelope: Envelope, message: pulsar.Message, reason: str
) -> None:
    """Move one waiting job to the queue's dead letters, as a worker would dead-letter it."""
    at = utc_now()
    letter = envelope.replace(
        created_at=just_after(at), meta={**envelope.meta, KILLED_AT_META: at.isoformat()}
    )
    dead = topics_for(inspector.settings, queue).dead
    connection = inspector.connection
    with client_errors(inspector.settings.service_url, f"publishing to {dead}"):
        connection.prepare_queue(dead, DEAD_LETTER_SUBSCRIPTION)
    position = position_text(position_of(message.message_id()))
    properties = dead_letter_properties(letter, reason, message.topic_name(), position)
    acks = inspector.job_index.acks(envelope.id, queue, dead)
    connection.publish(dead, encode(letter), properties=properties, acks=acks).result()
    cancel(connection, envelope.id, at=at)


def _picked(
    inspector: Inspector, queue: str, pick: JobPick, progress: Progress | None
) -> Iterator[tuple[pulsar.Message, Envelope | None]]:
    """The picked messages and their jobs (None: no job inside), in order. Picked by position,
    only from the first to the last is read; every one on the topic means, for scheduled jobs,
    those due later when read (the Scheduled page lists those)."""
    settings = inspector.settings
    topics = topics_for(settings, queue)
    span = sorted(parse_position(text) for text in pick.positions or ())
    after = (span[0][0], span[0][1] - 1) if span else None
    now = utc_now()
    backlog = read_backlog(
        inspector.admin,
        inspector.client,
        settings.service_url,
        topics.jobs if pick.where == "jobs" else topics.retry,
        settings.subscription,
        after,
        inspector.crypto,
    )
    with closing(backlog):
        for message in backlog:
            position = position_of(message.message_id())
            if span and position > span[-1]:
                return
            if progress is not None:
                progress(1)
            envelope = inspector.envelope_of(message)
            if pick.positions is not None:
                if position_text(position) in pick.positions:
                    yield message, envelope
            elif pick.where == "retry" or due_time(message, envelope) > now:
                yield message, envelope
