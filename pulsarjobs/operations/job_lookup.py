"""One job by its id, wherever it is: running (the workers' heartbeats), waiting, scheduled,
retrying or dead (the job index, transport/job_index.py, says at which position of which topic; the
message there says whether the subscription still holds it), or over with a kept result (the
results topic). Read as the Inspector reads: nothing is consumed or created.

A one-off look reads the index whole: the entries of every job stored and not settled, and
those written since the broker last compacted it (about a second per hundred thousand). A
process that looks often (the dashboard) keeps it instead, read once, then only what is new
(index_table.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import NotFound
from pulsarjobs.operations.browse import WHERE, Browser, FoundMessage, Where
from pulsarjobs.operations.index_table import IndexTable
from pulsarjobs.operations.inspector import Inspector, WorkerStatus
from pulsarjobs.transport.backlog import partition_holding, subscription_cursor
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.transport.job_index import IndexEntry, lane_of
from pulsarjobs.transport.topics import job_index_topic, results_topic, topics_for
from pulsarjobs.wire.heartbeat import RunningJob
from pulsarjobs.workflows.result_reader import ResultReader
from pulsarjobs.workflows.results import JobResult

READ_TIMEOUT_MS = 5_000
BROWSED: dict[str, Where] = {where: where for where in WHERE}  # topics Browser reads by position

JobState = Literal[
    "running",  # a worker runs it now
    "waiting",  # due, on its queue (a worker may have taken it: a reader cannot tell)
    "scheduled",  # on its queue, due later
    "retrying",  # on its queue's retry topic, due at its time
    "dead",  # on its queue's dead-letter topic
    "ordered",  # held on its queue's topic of ordered jobs, waiting its turn (or its time)
    "grouped",  # a grouped job's member, waiting for its group to be stored as one job
    "finished",  # over, its result kept
    "failed",  # over for good, its error kept
    "ended",  # ended lately on a worker, having reported its progress; no result kept
    "settled",  # acknowledged: it ran (or was replayed, purged, cancelled), no result kept
]


@dataclass(frozen=True, slots=True)
class FoundJob:
    job_id: str
    state: JobState
    queue: str | None
    entry: IndexEntry | None  # where the index says its latest message is
    message: FoundMessage | None  # that message, when still stored
    seen: tuple[WorkerStatus, RunningJob] | None  # running, or ended lately, by heartbeats
    result: JobResult | None  # its kept result
    index_read: int  # index entries read to find it

    @property
    def due_at(self) -> datetime | None:
        job = self.message.job if self.message else None
        return job.due_at if job else None

    @property
    def type(self) -> str | None:
        if self.message and self.message.job and self.message.job.envelope:
            return self.message.job.envelope.type
        if self.message and self.message.letter:
            return self.message.letter.envelope.type if self.message.letter.envelope else None
        if self.seen:
            return self.seen[1].type
        return self.result.type if self.result else None

    @property
    def message_path(self) -> str | None:
        """The dashboard's page of its message, when it is still stored."""
        if self.entry is None or self.message is None:
            return None
        entry = self.entry
        return f"/jobs/{entry.queue}/{entry.where}/{entry.position[0]}:{entry.position[1]}"


def find_job(
    inspector: Inspector,
    job_id: str,
    seen: tuple[WorkerStatus, RunningJob] | None,
    kept: IndexTable | None = None,
) -> FoundJob | None:
    """Where the job is now, `seen` where the workers' heartbeats say it runs or ran lately
    (worker/progress.py's last_progress); None when nothing stored knows of it (an unknown id,
    a job settled without keeping its result, or one whose index entry was lost). `kept`: the
    index as this process keeps it, else it is read whole."""
    entry, read = read_entry(inspector, job_id, kept)
    message, held_apart = None, False
    if entry is not None and (where := BROWSED.get(entry.where)) is not None:
        message = Browser(inspector).message(entry.queue, where, entry.position)
        ids = ids_of(message)
        if kept is not None and ids is not None and job_id not in ids:  # another's hash
            return find_job(inspector, job_id, seen)
    elif entry is not None:
        held_apart = held_unread(inspector, entry)
    result = kept_result(inspector, job_id)
    state = state_of(entry, message, seen, result, held_apart)
    if state is None:
        return None
    queue = entry.queue if entry else (seen[1].queue if seen else None)
    return FoundJob(job_id, state, queue, entry, message, seen, result, read)


def state_of(
    entry: IndexEntry | None,
    message: FoundMessage | None,
    seen: tuple[WorkerStatus, RunningJob] | None,
    result: JobResult | None,
    held_apart: bool = False,
) -> JobState | None:
    if seen is not None and seen[1].ended_at is None:
        return "running"
    if message is not None and message.held:
        if message.where == "dead":
            return "dead"
        if message.where == "retry":
            return "retrying"
        due = message.job.due_at if message.job else None
        return "scheduled" if due is not None and due > utc_now() else "waiting"
    if result is not None:
        return "finished" if result.error is None else "failed"
    if seen is not None:
        return "ended"
    if entry is not None:
        if not held_apart:
            return "settled"
        return HELD_APART_STATE.get(entry.where, "waiting")  # a fair lane's: waiting its turn
    return None


def held_unread(inspector: Inspector, entry: IndexEntry) -> bool:
    """Whether the workers' subscription still holds the job on its queue's ordered topic, its
    group topic or a fair lane (its cursor says; the message itself is not read)."""
    topics = topics_for(inspector.settings, entry.queue)
    lane = lane_of(entry.where)
    apart = {"groups": topics.groups, "ordered": topics.ordered}
    topic = topics.lane(lane) if lane is not None else apart[entry.where]
    topic = partition_holding(inspector.admin, topic, entry.position) or topic
    cursor = subscription_cursor(inspector.admin, topic, inspector.settings.subscription)
    return cursor is not None and not cursor.is_acked(entry.position)


def ids_of(message: FoundMessage | None) -> tuple[str, ...] | None:
    """The ids the job a message holds is indexed under: its own, and its chain's for a chain's
    link; None when it cannot be read."""
    envelope = message.job.envelope if message and message.job else None
    if envelope is None and message is not None and message.letter is not None:
        envelope = message.letter.envelope
    if envelope is None:
        return None
    return (envelope.id,) if envelope.chain is None else (envelope.id, envelope.chain.id)


def read_entry(
    inspector: Inspector, job_id: str, kept: IndexTable | None = None
) -> tuple[IndexEntry | None, int]:
    """The job's latest index entry (None: none, or emptied), and how many entries were read."""
    topic = job_index_topic(inspector.settings)
    if not exists(inspector, topic):  # a reader would create it
        return None, 0
    if kept is not None:
        return kept.get(job_id)
    entry: IndexEntry | None = None
    read = 0
    with client_errors(inspector.settings.service_url, f"reading {topic}"):
        reader = inspector.client.create_reader(
            topic, pulsar.MessageId.earliest, is_read_compacted=True
        )
        try:
            while reader.has_message_available():
                message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
                read += 1
                if message.partition_key() == job_id:
                    entry = IndexEntry.decode(message.data())
        finally:
            reader.close()
    return entry, read


def kept_result(inspector: Inspector, job_id: str) -> JobResult | None:
    if not exists(inspector, results_topic(inspector.settings)):
        return None
    reader = ResultReader(inspector.connection, utc_now)
    try:
        asked = reader.ask(job_id)  # read to the end: a result stored is there now
        return asked.result() if asked.done() else None
    finally:
        reader.close()


def exists(inspector: Inspector, topic: str) -> bool:
    """Whether the topic exists (a reader would create it)."""
    try:
        inspector.admin.last_message_id(topic)
    except NotFound:
        return False
    return True


WHERE_SAID = {"jobs": "its queue's topic", "retry": "the retry topic", "dead": "the dead-letter "
              "topic", "ordered": "the ordered jobs' topic",
              "groups": "the grouped jobs' members' topic"}  # fmt: skip


HELD_APART_STATE: dict[str, JobState] = {"groups": "grouped", "ordered": "ordered"}


def where_said(found: FoundJob) -> str:
    """Where its latest message is, as one says it: "the retry topic of billing at 12:3"."""
    entry = found.entry
    if entry is None:
        return "not on a queue" if found.seen else "no message stored"
    held = "" if found.message is None or found.message.held else ", acknowledged"
    at = f"{entry.position[0]}:{entry.position[1]}"
    lane = lane_of(entry.where)
    topic = f"fair lane {lane}" if lane is not None else WHERE_SAID[entry.where]
    return f"{topic} of {entry.queue} at {at}{held}"
