"""Ordered jobs: jobs with the same order key run one at a time, in enqueue order.

A queue's ordered jobs go to a topic of their own (`<queue>-ordered`), each with its order key as
the message key, read by every worker on a Key_Shared subscription: the broker delivers all of a
key's jobs to one worker at a time, in order, and moves a key to another worker only once the
jobs it delivered are acknowledged (or that worker is gone). Within the worker, this feed lets a
runner take a key's next job only once the one before has settled. Other keys run in parallel.

A failed ordered job is retried where it is — its runner waits out the backoff and runs it again
— so that the jobs behind it wait: it is not re-published to the retry topic, where they would
overtake it. So does every job whose verdict holds its order (wire/verdicts.py): one snoozed,
one put back after its worker process died, one the broker let out early. Its key's later jobs
run once it succeeds or is dead-lettered.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import pulsar

from pulsarjobs.worker._queue_feed import Doorbell, QueueFeed, Receiver


class OrderedQueueFeed(QueueFeed):
    """A queue's ordered jobs: the ready list holds at most one job per key, the key's next one
    waits behind it until it settles (`done`)."""

    ordered = True

    def __init__(self, queue: str, consumer: Receiver, room: int, doorbell: Doorbell) -> None:
        super().__init__(queue, consumer, room, doorbell)
        self._behind: dict[str, deque[pulsar.Message]] = {}  # a key with a job ready or running
        self._waiting_behind = 0
        self._keys = threading.Lock()  # the fetch thread and the runners both change them

    @property
    def held(self) -> int:
        return len(self._ready) + self._waiting_behind

    def done(self, message: pulsar.Message) -> None:
        """A key's job settled: its next one may run."""
        key = message.partition_key()
        with self._keys:
            behind = self._behind.get(key)
            if not behind:
                self._behind.pop(key, None)
                return
            following = behind.popleft()
            self._waiting_behind -= 1
        self._ready.append(following)
        self.dry = False
        self._doorbell(1)

    def give_back(self, message: pulsar.Message) -> None:
        """Not started: it goes back with every job behind it, so that none overtakes it."""
        with self._keys:
            behind = self._behind.pop(message.partition_key(), deque())
            self._waiting_behind -= len(behind)
        super().give_back(message)
        for following in behind:
            super().give_back(following)

    def _arrive(self, messages: Sequence[pulsar.Message]) -> None:
        if self._stopped.is_set():
            super()._arrive(messages)  # gives them back
            return
        free = []
        with self._keys:
            for message in messages:
                key = message.partition_key()
                behind = self._behind.get(key)
                if behind is None:
                    self._behind[key] = deque()
                    free.append(message)
                else:
                    behind.append(message)
                    self._waiting_behind += 1
        if free:
            super()._arrive(free)
