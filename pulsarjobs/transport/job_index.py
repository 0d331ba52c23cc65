"""The job index: where the broker stores each job, by its id, so that one job is found among
millions without reading them (`pulsarjobs jobs show ID`, the dashboard's /jobs/{id};
operations/job_lookup.py reads it).

A compacted topic, `pulsarjobs-job-index`, keyed by job id. Its value says where the job's latest
message is: "queue where ledger:entry", `where` one of the queue's topics (jobs, retry, dead,
ordered). It is written
- when the broker has stored a job sent to a queue's topic by `App.publish_envelope` or an
  enqueue (so also a chain's next link, a cron tick, a retry or a snooze a worker publishes);
- when a worker dead-letters a job (its position on the dead-letter topic);
- when a grouped job's member is stored on its queue's group topic, emptied once a worker has
  stored its group's job (that job, under its own id, carries it);
- and emptied (compaction's tombstone) when a worker settles a job that succeeded or expired:
  its kept result, if any, says the rest.
A chain's link is indexed under the chain's id too (a batch counts the chain under it), so that
the chain's id finds its latest link, until the last one succeeds or a link expires.
So it holds one entry per job stored and not settled, the dead ones included, and one per job
cancelled, until compaction drops those emptied (the broker compacts it past
COMPACTION_THRESHOLD_BYTES of new entries).

Writing never delays an enqueue nor adds a round trip: the broker's ack (on the client's thread)
appends (id, queue, topic, message id) to a deque, and a thread of the index sends what gathered
every FLUSH_SECONDS, batched, with a producer of its own. The index is a help to find jobs, not
a record: an entry still in the deque when its process dies is lost, and then the job is found
only while it runs, by its kept result, or once a worker publishes it again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pulsar
import structlog

from pulsarjobs.logs import error_text
from pulsarjobs.settings import Settings
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.backlog import Position, parse_position, position_of, position_text
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import fair_lane_index, job_index_topic, topics_for
from pulsarjobs.wire.verdicts import Outcome

log = structlog.get_logger("pulsarjobs.transport.job_index")

FLUSH_SECONDS = 0.05
# An entry is emptied this long after its job settled: the enqueuer's entry, sent within
# FLUSH_SECONDS of the broker's ack, lands first unless its process stalls that long (then the
# entry stays, pointing at a message acknowledged: a lookup says the job is settled).
EMPTY_AFTER_SECONDS = 5.0
CLOSE_WAIT_SECONDS = 30.0  # a close waits this long for the last entries to be sent
# a queue's topics, as an entry names them ("groups": grouped jobs' members, grouping/)
WHERE_ON = ("jobs", "retry", "dead", "ordered", "groups")
FAIR_WHERE = "fair-"  # and a fair lane's: "fair-<i>" (flow/fairness.py)
# (job id, queue, topic, message id): where the broker stored it
Note = tuple[str, str, str, Any]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where a job's latest message is."""

    queue: str
    where: str  # one of WHERE_ON, or a fair lane's
    position: Position

    def encode(self) -> bytes:
        return f"{self.queue} {self.where} {position_text(self.position)}".encode()

    @classmethod
    def decode(cls, data: bytes) -> IndexEntry | None:
        """None for an emptied entry (the job settled for good) or one this version cannot
        read."""
        parts = data.decode(errors="replace").split(" ")
        if len(parts) != 3 or (parts[1] not in WHERE_ON and lane_of(parts[1]) is None):
            return None
        try:
            return cls(parts[0], parts[1], parse_position(parts[2]))
        except ValueError:
            return None


class JobIndex:
    """Writes the index for one process, from a thread of its own, started at its first
    entry."""

    def __init__(self, connection: Callable[[], Connection]) -> None:
        self._connection = connection
        self._notes: deque[Note] = deque()  # appended on the client's thread, taken on ours
        self._settling: deque[str] = deque()  # job ids, appended by a worker's runners
        self._settled: deque[tuple[float, list[str]]] = deque()  # (when to empty, job ids)
        self._wheres: dict[str, str] = {}  # topic -> which of its queue's topics it is
        self._producer: pulsar.Producer | None = None
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self._stop = threading.Event()
        self._failed = False  # said once in the log
        self._gave_up = False  # a close found its thread stuck in the client: no more entries
        # The broker's answer to each round's last entry, by kind (Result.Ok, or what failed):
        # its message id. The client calls `__setitem__`, a builtin: a Python function there
        # cost more CPU again (bench/job_index_cost.py).
        self._answers: dict[Any, Any] = {}
        # whether it writes, as decided for this connection (a TestRunner swaps the app's own)
        self._writes: tuple[object, bool] | None = None
        in_child = weakref.WeakMethod(self._after_fork)  # an App made before worker processes
        os.register_at_fork(after_in_child=lambda: (forget := in_child()) and forget())

    def acks(
        self, job_id: str, queue: str, topic: str, group: Acks | None = None,
        chain_id: str | None = None,
    ) -> Acks:  # fmt: skip
        """The Acks to publish a job's message with: once stored, its position is indexed, under
        the job's id and, for a chain's link, the chain's (which a batch counts it under)."""
        if not self.writes():
            return group or Acks(1)
        return IndexedAck(self, (job_id, queue, topic), group or Acks(1), chain_id)

    def note(self, note: Note) -> None:
        if self._gave_up:  # nobody would send it: kept, it would only grow the deque
            return
        self._notes.append(note)
        if self._thread is None:
            self._start()

    def settled(self, job_id: str) -> None:
        """The job is over with nothing stored in its place: its entry is emptied, a little
        later (EMPTY_AFTER_SECONDS). Only where `writes()`: a worker's step asks once."""
        if self._gave_up:
            return
        self._settling.append(job_id)  # stamped with its time by the batch, on our thread
        if self._thread is None:
            self._start()

    def close(self) -> None:
        """Send what gathered and wait for the broker's acks (before the client closes)."""
        with self._starting:  # a thread being started on another thread is joined, once started
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(CLOSE_WAIT_SECONDS)
            if thread.is_alive():  # stuck in the client: a process must still be able to end
                # An app used again writes no entries, as with the index off: a second thread
                # beside the stuck one would share its state.
                self._gave_up = True
                log.warning("the job index's last entries are not written: it did not finish"
                            " within the time allowed; this process writes no more entries",
                            seconds=CLOSE_WAIT_SECONDS)  # fmt: skip
                return
        if self._producer is not None:
            with contextlib.suppress(Exception):  # a broker gone: nothing more to do
                self._producer.flush()
                self._producer.close()
            self._check_answers()
        self._thread, self._producer = None, None  # an app used again starts anew
        self._stop.clear()

    # -- inside ------------------------------------------------------------------------------

    def writes(self) -> bool:
        """Not under the TestRunner (its connection is in memory), nor with the index off, nor
        once a close gave up on it."""
        if self._gave_up:
            return False
        connection = self._connection()
        if self._writes is None or self._writes[0] is not connection:
            in_memory = connection.in_memory
            self._writes = (connection, connection.settings.job_index and not in_memory)
        return self._writes[1]

    def _after_fork(self) -> None:
        """A forked child has neither the parent's thread nor its client: it starts anew."""
        self._notes.clear()
        self._settling.clear()
        self._settled.clear()
        self._answers.clear()  # the parent's producer's, not the child's
        self._gave_up = False  # on the parent's stuck thread
        self._thread, self._producer = None, None
        self._starting, self._stop = threading.Lock(), threading.Event()

    def _start(self) -> None:
        with self._starting:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="pulsarjobs-job-index", daemon=True
                )
                self._thread.start()
                _started_indexes.add(self)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self._send_noted()
        self._send_noted(closing=True)

    def _send_noted(self, closing: bool = False) -> None:
        now, settling = time.monotonic(), self._settling
        if settling:  # the settles since the last round share a time: one stamp per batch
            batch = [settling.popleft() for _ in range(len(settling))]
            self._settled.append((now + EMPTY_AFTER_SECONDS, batch))
        emptied: list[str] = []
        while self._settled and (closing or self._settled[0][0] <= now):
            emptied += self._settled.popleft()[1]
        if not self._notes and not emptied:
            return
        if self._producer is None and self._connection().in_memory:
            # A TestRunner swapped in its connection since these were noted: they wait for the
            # app's own to come back (an app closed meanwhile leaves them unwritten).
            if emptied:
                self._settled.appendleft((now, emptied))
            return
        try:
            producer = self._producer or self._open()
        except Exception as exc:
            self._notes.clear()  # no index now: jobs are still found while they run
            self._say_failed(exc)
            return
        self._check_answers()
        settings, wheres = self._connection().settings, self._wheres
        entries: list[tuple[str, bytes]] = []
        while self._notes:
            job_id, queue, topic, message_id = self._notes.popleft()
            if (where := wheres.get(topic)) is None:
                where = wheres[topic] = where_on(settings, queue, topic)
            entries.append((job_id, IndexEntry(queue, where, position_of(message_id)).encode()))
        entries += [(job_id, b"") for job_id in emptied]  # empty: compaction's tombstone
        # Only the round's last entry asks for the broker's answer: the producer answers in
        # order, and a timeout or a lost producer fails every entry pending, the last one too.
        # An answer asked for per entry cost three times its CPU (bench/job_index_cost.py).
        last = len(entries) - 1
        for number, (job_id, value) in enumerate(entries):
            answer = self._answers.__setitem__ if number == last else None
            producer.send_async(value, answer, partition_key=job_id)

    def _open(self) -> pulsar.Producer:
        connection = self._connection()
        topic = job_index_topic(connection.settings)
        connection.keep_marks(topic)  # a subscription that keeps it, and compaction
        self._producer = connection.made(lambda client: client.create_producer(
            topic, batching_enabled=True, batching_max_publish_delay_ms=10,
            block_if_queue_full=True))  # fmt: skip
        return self._producer

    def _check_answers(self) -> None:
        failures = [result for result in list(self._answers) if result != pulsar.Result.Ok]
        if failures:
            self._say_failed(RuntimeError(str(failures[0])))

    def _say_failed(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            log.warning("cannot write the job index", error=error_text(exc))


# A script that enqueues and exits leaves notes to send, and its connection is closed at exit
# (connection.py). atexit runs the hooks registered last first, and connection.py's was
# registered as this module imported it: each index sends what gathered before that.
_started_indexes: weakref.WeakSet[JobIndex] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for index in list(_started_indexes):
        with contextlib.suppress(Exception):  # exiting goes on whatever one close does
            index.close()


class IndexedAck(Acks):
    """One job message's ack: notes where the broker stored it, then tells its group."""

    def __init__(
        self, index: JobIndex, job: tuple[str, str, str], group: Acks, chain_id: str | None
    ) -> None:
        # No Acks.__init__: the group's future is the one awaited, its count the one kept.
        self.stored = group.stored
        self._index, self._job, self._group, self._chain_id = index, job, group, chain_id

    def ok(self, message_id: object = None) -> None:
        if message_id is not None:  # the in-memory transport tells none
            job_id, queue, topic = self._job
            self._index.note((job_id, queue, topic, message_id))
            if self._chain_id is not None:
                self._index.note((self._chain_id, queue, topic, message_id))
        self._group.ok()

    def failed(self, failure: Exception) -> None:
        self._group.failed(failure)


def where_on(settings: Settings, queue: str, topic: str) -> str:
    """Which of the queue's topics `topic` is."""
    if (lane := fair_lane_index(topic)) is not None:
        return f"{FAIR_WHERE}{lane}"
    topics = topics_for(settings, queue)
    by_topic = {topics.jobs: "jobs", topics.retry: "retry", topics.dead: "dead",
                topics.groups: "groups"}  # fmt: skip
    return by_topic.get(topic, "ordered")


def lane_of(where: str) -> int | None:
    """The fair lane an entry's `where` names ("fair-3": 3); None for any other."""
    number = where.removeprefix(FAIR_WHERE)
    return int(number) if where.startswith(FAIR_WHERE) and number.isdigit() else None


class IndexedSettles:
    """The worker's step, where the index `writes()`, that empties the entry of a job over with
    nothing stored in its place (done, expired; `Policy.unindexed`). A retry's or a dead
    letter's position is indexed as it is stored. A cancelled job keeps its entry: it may have
    a copy stored under its id (Kill, Run now), and what a lookup then says of the entry
    (settled, or where the copy is) holds."""

    name: ClassVar[str] = "job index"

    def __init__(self, index: JobIndex) -> None:
        self.index = index

    def told(self, queue: str, outcome: Outcome) -> None:
        policy = outcome.kind.policy
        if policy.unindexed:
            self.index.settled(outcome.envelope.id)
            chain = outcome.envelope.chain
            if chain is not None and (not chain.next or not policy.succeeded):
                self.index.settled(chain.id)  # the chain is over: its last link, or it stopped
