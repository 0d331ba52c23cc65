"""A fair queue's feeds: its plain jobs and each of its lanes (flow/fairness.py), taking turns.

Each lane is a `QueueFeed` of its own, with its own Shared consumer of the lane's topic: the
pipeline acknowledges or hands back a job through the feed that gave it, as for any queue.
Which lane gives the next job is `LaneTurns`' choice: the plain jobs (lane 0 here) and the
non-empty lanes in turn, each turn as long as the weight of the job heading the lane.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import pulsar

from pulsarjobs.flow.fairness import LaneTurns, weight_of
from pulsarjobs.transport.schema_registry import WriterSchemas
from pulsarjobs.transport.topics import FAIR_LANE
from pulsarjobs.worker._queue_feed import QueueFeed

# A lane's turn finds its jobs ready only if its fetch thread keeps ahead of the runners: with
# less room, a lane taking 3 of every 4 jobs ran empty between two refills, and lost its turns.
LANE_PREFETCH = 1000  # each lane consumer's receiver queue
LANE_ROOM = 64  # jobs of a lane ready for the runners, at least


def lane_room(room: int) -> int:
    return max(room, LANE_ROOM)


def look_up_schemas(schemas: WriterSchemas, topics: Iterable[str]) -> None:
    """Each lane's (of `topics`, the others skipped) first writer schema (version 0: the one
    its first producer or consumer registered), read before the worker takes jobs (blocks):
    looked up by the runner of the lane's first job instead, it would start long after its
    turn."""
    for topic in (topic for topic in topics if FAIR_LANE.search(topic)):
        key = WriterSchemas.key(topic, bytes(8))
        if key is not None and key not in schemas.known:
            schemas.fetch(key)


class FairLanes:
    def __init__(self, plain: QueueFeed, lanes: Sequence[QueueFeed]) -> None:
        self.plain = plain
        self.lanes = tuple(lanes)
        self._feeds = (plain, *lanes)
        self._turns = LaneTurns(len(self._feeds))
        self._choosing = threading.Lock()  # runners on the loop and in threads take at once
        self._primed = False  # every lane had its first look at the broker

    def take(self) -> tuple[QueueFeed, pulsar.Message] | None:
        """The next job by the lanes' turns, with the feed it came from."""
        if not self._primed and not self._prime():
            return None
        with self._choosing:
            lane = self._turns.next(self._head_weight)
            if lane is None:
                return None
            feed = self._feeds[lane]
            message = feed.take()
        return None if message is None else (feed, message)

    def _prime(self) -> bool:
        """Whether every lane has its first jobs ready, or found none (at most one receive poll
        after the worker starts): no lane's turns begin before another's only for being
        fetched first. Their fetch threads ring the doorbell either way, and runners look
        again."""
        self._primed = all(feed.dry or feed.head() is not None for feed in self._feeds)
        return self._primed

    def prime_again(self) -> None:
        """Resumed: what each lane fetched while paused is looked at again before turns go on
        (the fetch threads look at the broker again within one receive poll)."""
        for feed in self._feeds:
            feed.dry = False
        self._primed = False

    @property
    def dry(self) -> bool:
        return all(feed.dry for feed in self._feeds)

    @property
    def waiting(self) -> int:
        return sum(feed.waiting for feed in self._feeds)

    def _head_weight(self, lane: int) -> int | None:
        """The weight of the job heading a lane; 0: more are on their way; None: idle."""
        feed = self._feeds[lane]
        head = feed.head()
        if head is None:
            return None if feed.dry else 0
        return 1 if lane == 0 else weight_of(head.properties())
