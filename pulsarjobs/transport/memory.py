"""A broker in memory, for the TestRunner (testing.py): the worker's own feed, runners and
pipeline run on it, with the transport replaced — as dramatiq's StubBroker and procrastinate's
InMemoryConnector replace theirs, not the worker.

`InMemoryConnection` keeps what is published, in order, each message due at its deliver_at
on the TestRunner's virtual clock. The TestRunner hands each job, once due, to the
`MemoryConsumer` of its queue (or of its queue's ordered jobs), which stands in for a Pulsar
consumer: the feed receives from it, the pipeline acknowledges on it, and a job handed back
comes round again. `Outstanding` counts the jobs handed out and not yet acknowledged.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn, TypeVar

import pulsar

from pulsarjobs.clock import Clock
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.answers import Outgoing
from pulsarjobs.transport.connection import Closable, Connection, OnMark
from pulsarjobs.transport.key_table import KeyTable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    topic: str
    data: bytes
    due: datetime  # when the broker would deliver it
    properties: Mapping[str, str]
    key: str | None = None  # its message key: an ordered job's order key


class MemoryMessageId(str):
    """A message id: text, which serializes (as a pulsar.MessageId does) to bytes."""

    __slots__ = ()

    def serialize(self) -> bytes:
        return self.encode()


class MemoryMessage:
    """A delivered message, with the accessors of a pulsar.Message the worker uses."""

    __slots__ = ("_id", "published", "sequence")

    def __init__(self, published: PublishedMessage, sequence: int) -> None:
        self.published = published
        self.sequence = sequence  # its place in publish order
        self._id = MemoryMessageId(f"memory:{sequence}")

    def topic_name(self) -> str:
        return self.published.topic

    def data(self) -> bytes:
        return self.published.data

    def message_id(self) -> MemoryMessageId:
        return self._id

    def schema_version(self) -> bytes:
        return b""  # memory keeps no schema registry: the reader's schema reads every job

    def partition_key(self) -> str:
        return self.published.key or ""

    def properties(self) -> dict[str, str]:
        return dict(self.published.properties)


class InMemoryConnection(Connection):
    """Stands in for the broker: keeps what is published, in order, until it is taken."""

    in_memory = True  # no job index is written (job_index.py)

    def __init__(self, settings: Settings, clock: Clock) -> None:
        super().__init__(settings)
        self.clock = clock
        self._published: list[PublishedMessage] = []
        self._published_lock = threading.Lock()  # sync jobs enqueue from runner threads
        self.marks: dict[str, dict[str, bytes]] = {}  # by topic, then key (see marks.py)
        self._followers: dict[str, list[OnMark]] = {}  # by topic: told of each mark put

    @property
    def client(self) -> NoReturn:
        raise ConfigurationError(
            "the in-memory connection has no Pulsar client: under TestRunner, run jobs with "
            "runner.run_all() or runner.run_next(), not with a Worker"
        )

    def prepare_queue(self, topic: str, subscription: str, key_shared: bool = False) -> None:
        """Nothing to prepare: no message is lost in memory."""

    def prepared(self, topic: str) -> bool:
        return True

    def ready(self, topic: str, scheduled: bool = False) -> bool:
        """Publishing to memory never blocks."""
        return True

    def message_ttl(self) -> float | None:
        """Memory keeps messages for ever."""
        return None

    def keep_results(self, topic: str, seconds: float) -> None:
        """Memory keeps results for ever (each says when it expires)."""

    def put_mark(self, topic: str, key: str, value: bytes) -> None:
        """Kept in memory, as the broker keeps marks; an empty value removes the mark. Its
        followers are told at once, on the caller's thread."""
        with self._published_lock:
            marks = self.marks.setdefault(topic, {})
            if value:
                marks[key] = value
            else:
                marks.pop(key, None)
            followers = list(self._followers.get(topic, ()))
        for on_mark in followers:
            on_mark(key, value)

    def follow_marks(self, topic: str, on_mark: OnMark) -> Closable:
        """Tell `on_mark` of every mark now and of each one put later, until closed."""
        with self._published_lock:
            marks = dict(self.marks.get(topic, {}))
            self._followers.setdefault(topic, []).append(on_mark)
        for key, value in marks.items():
            on_mark(key, value)
        return _Unfollow(lambda: self._unfollow(topic, on_mark))

    def _unfollow(self, topic: str, on_mark: OnMark) -> None:
        with self._published_lock:
            self._followers[topic].remove(on_mark)

    def _send(self, topic: str, messages: list[Outgoing]) -> None:
        now = self.clock()
        with self._published_lock:
            for message in messages:
                due = now if message.deliver_at is None else max(message.deliver_at, now)
                self._published.append(PublishedMessage(
                    topic, message.data, due, message.properties or {}, message.key))  # fmt: skip
        for message in messages:
            message.acks.ok()

    def take(self) -> list[PublishedMessage]:
        """Every message published since the last take, oldest first."""
        with self._published_lock:
            taken, self._published = self._published, []
        return taken


class _Unfollow:
    def __init__(self, undo: Callable[[], None]) -> None:
        self._undo = undo

    def close(self) -> None:
        self._undo()


class MemoryKeyTable(KeyTable[T]):
    """A compacted topic's table in memory: the marks `put_mark` keeps (key_table.py)."""

    def catch_up(self) -> None:
        assert isinstance(self.connection, InMemoryConnection)
        stored = dict(self.connection.marks.get(self.topic, {}))
        self._values = {}
        for key, data in stored.items():
            self.apply(key, data)

    def close(self) -> None:
        """Nothing to close."""


class ProcessDied(Exception):
    """The worker process died before it could acknowledge a job (`crash_process_in`)."""


class Outstanding:
    """Jobs handed to the consumers and not yet acknowledged."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def add(self) -> None:
        with self._lock:
            self._count += 1

    def settled(self) -> None:
        with self._lock:
            self._count -= 1


class MemoryConsumer:
    """A queue's consumer in memory (the feed's Receiver): what was handed to it, in order; a
    job handed back comes first again. As with Pulsar, what it received and did not
    acknowledge is not lost when it closes: `left()` gives it back."""

    def __init__(
        self, outstanding: Outstanding, dies_at: Callable[[MemoryMessage], bool] = lambda _: False
    ) -> None:
        self.outstanding = outstanding
        self.dies_at = dies_at  # whether the process dies as this message is to be acked
        self._ready: deque[MemoryMessage] = deque()
        self._received: dict[str, MemoryMessage] = {}  # not acknowledged yet, by message id
        self._arrived = threading.Condition()
        self._closed = False

    def hand(self, message: MemoryMessage) -> None:
        self.outstanding.add()
        with self._arrived:
            self._ready.append(message)
            self._arrived.notify()

    def receive(self, timeout_millis: int | None = None) -> pulsar.Message:
        with self._arrived:
            if not self._ready and not self._closed:
                self._arrived.wait(None if timeout_millis is None else timeout_millis / 1000)
            if not self._ready:
                raise pulsar.Timeout()
            message = self._ready.popleft()
            self._received[message.message_id()] = message
            return message

    def batch_receive(self) -> list[pulsar.Message]:
        with self._arrived:
            taken, self._ready = list(self._ready), deque()
            self._received.update((message.message_id(), message) for message in taken)
        return taken

    def acknowledge(self, message: pulsar.Message) -> None:
        if self.dies_at(message):
            raise ProcessDied(
                f"the worker process died before it acknowledged {message.message_id()} "
                "(TestRunner.crash_process_in): it is delivered again"
            )
        with self._arrived:
            self._received.pop(message.message_id(), None)
        self.outstanding.settled()

    def negative_acknowledge(self, message: pulsar.Message) -> None:
        with self._arrived:  # redelivered in publish order, as the broker does
            self._received.pop(message.message_id(), None)
            self._ready = deque(sorted([*self._ready, message], key=by_sequence))
            self._arrived.notify()

    def close(self) -> None:
        """Stop waiting: the fetch thread that receives from it ends."""
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()

    def left(self) -> list[MemoryMessage]:
        """What was handed and not acknowledged: not received yet, or received by a runner
        that is gone (its process died)."""
        with self._arrived:
            left = [*self._ready, *self._received.values()]
            self._ready, self._received = deque(), {}
        for _ in left:
            self.outstanding.settled()
        return left


def by_sequence(message: MemoryMessage) -> int:
    return message.sequence
