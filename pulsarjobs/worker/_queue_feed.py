"""A queue's feed: its consumer, the client's prefetch buffer behind it, and a thread that
moves messages from that buffer to a small ready list for the worker's runners.

The consumer is Shared, of the queue's topic and the subscription's retry topic. The thread
moves messages in batches while they flow, so that runners take them without a thread
hand-over each. It does as little Python work as it can (the runners decode): every client call
releases the GIL, and a second thread busy in Python would make the runners wait for it at
each acknowledgement. It rings the runners' doorbell when jobs arrive, and when the queue has
stayed empty long enough to count as dry.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import pulsar
import structlog

from pulsarjobs.logs import error_text

log = structlog.get_logger("pulsarjobs.feed")

RECEIVE_POLL_MS = 50  # how long a queue stays silent before it counts as dry

# Rung by a fetch thread with the number of jobs that arrived; 0: a queue ran dry, look again.
Doorbell = Callable[[int], None]


class Receiver(Protocol):
    """What a feed needs of a consumer (a pulsar.Consumer, or a fake in unit tests)."""

    def receive(self, timeout_millis: int | None = None) -> pulsar.Message: ...
    def batch_receive(self) -> Sequence[pulsar.Message]: ...
    def negative_acknowledge(self, message: pulsar.Message) -> None: ...
    def acknowledge(self, message: pulsar.Message) -> None: ...
    def close(self) -> None: ...


class QueueFeed:
    ordered = False  # an OrderedQueueFeed (_ordering.py): its runners tell it when a job is done

    def __init__(self, queue: str, consumer: Receiver, room: int, doorbell: Doorbell) -> None:
        self.queue = queue
        self.consumer = consumer
        self.dry = False  # the broker had nothing for it lately: lower queues may run
        self.paused = False  # paused for all workers (pauses.py): not fetched, not taken
        self._ready: deque[pulsar.Message] = deque()
        self._room = room  # the thread fetches more only while fewer than this are ready
        self._has_room = threading.Event()
        # Whether the fetch thread waits for room: a plain flag each take reads, where
        # Event.is_set would be a Python call per job.
        self._full = False
        self._doorbell = doorbell
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._fetch_forever, name=f"pulsarjobs-fetch-{queue}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop fetching (blocks up to one receive poll) and hand back what is ready."""
        self._stopped.set()
        self._has_room.set()
        if self._thread.is_alive():
            self._thread.join()
        self.give_back_ready()

    def take(self) -> pulsar.Message | None:
        """The next ready job, if any; callable from any thread."""
        try:
            message = self._ready.popleft()
        except IndexError:
            return None
        if self._full and len(self._ready) <= self._room // 2:
            self._full = False
            self._has_room.set()
        return message

    def head(self) -> pulsar.Message | None:
        """The job `take` would give now, left in place."""
        try:
            return self._ready[0]
        except IndexError:
            return None

    @property
    def waiting(self) -> int:
        """Jobs fetched and ready for a runner."""
        return len(self._ready)

    @property
    def held(self) -> int:
        """Jobs fetched: ready, or (ordered ones) waiting for their key's turn."""
        return len(self._ready)

    def done(self, message: pulsar.Message) -> None:
        """A job settled (only an ordered feed needs to know)."""

    def give_back(self, message: pulsar.Message) -> None:
        """Not started: redelivered at once, to another worker if this one closes."""
        with contextlib.suppress(Exception):  # a closed consumer gives it back anyway
            self.consumer.negative_acknowledge(message)

    def give_back_ready(self) -> None:
        while (message := self.take()) is not None:
            self.give_back(message)

    def close(self) -> None:
        """Unacknowledged jobs, the prefetched ones included, go back to other workers."""
        with contextlib.suppress(Exception):  # closed already, when quiet
            self.consumer.close()

    def _fetch_forever(self) -> None:
        while not self._stopped.is_set():
            if self.paused:  # what was fetched stays here, held, not run
                self._stopped.wait(RECEIVE_POLL_MS / 1000)
                continue
            if self.held >= self._room:
                self._has_room.clear()
                self._full = True
                if self.held >= self._room:  # a take may have made room meanwhile
                    self._has_room.wait(RECEIVE_POLL_MS / 1000)
                continue
            self._fetch_some()

    def _fetch_some(self) -> None:
        """Wait for one job; then take whatever else the client holds, a batch at a time."""
        try:
            first = self.consumer.receive(timeout_millis=RECEIVE_POLL_MS)
        except pulsar.Timeout:
            self._ran_dry()
            return
        except Exception as exc:  # a closed consumer or a lost connection
            self._ran_dry()
            if not self._stopped.is_set():
                log.warning("receive failed; retrying", queue=self.queue, error=error_text(exc))
                self._stopped.wait(1.0)
            return
        self._arrive([first])
        while not self._stopped.is_set() and self.held < self._room:
            try:
                batch = self.consumer.batch_receive()
            except Exception:  # closing: the next receive says so
                return
            if not batch:
                return
            self._arrive(batch)

    def _arrive(self, messages: Sequence[pulsar.Message]) -> None:
        if self._stopped.is_set():  # came just as the worker turned quiet or stopped
            for message in messages:
                self.give_back(message)
            return
        self._ready.extend(messages)
        self.dry = False
        self._doorbell(len(messages))

    def _ran_dry(self) -> None:
        if not self._ready and not self.dry:
            self.dry = True
            self._doorbell(0)  # lower queues may run now
