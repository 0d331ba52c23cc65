"""Fair queueing by key: a queue's fair-keyed jobs spread over lanes that workers serve in turn.

A Shared subscription hands out a topic's messages in order: one key's deep backlog would hold
back every job enqueued after it. So a fair job goes to one of the queue's `fair_lanes` lane
topics (`<queue>-fair-<i>`, transport/topics.py), chosen by a stable hash of its key, and each
worker takes jobs from its queue's non-empty lanes in turn, its plain topic being one more lane
(worker/_fair.py). A lane's turn starts as many jobs as the weight of the job at its head.
Keys that share a lane share its order. The bound this gives is stated in docs/flow-control.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.jobs import FairKey, check_key, check_weight
from pulsarjobs.transport.memory import MemoryMessage
from pulsarjobs.transport.topics import fair_lane_index

WEIGHT_PROPERTY = "fair-weight"  # a weighted job's weight, read by workers without decoding it


def lane_of(key: str, lanes: int) -> int:
    """The lane of a key: the same in every process and language (BLAKE2b, not hash())."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % lanes


def weight_of(properties: Mapping[str, str]) -> int:
    """A delivered job's weight, from its message's properties (1 when it has none)."""
    return int(properties.get(WEIGHT_PROPERTY, 1))


def weight_properties(weight: int) -> dict[str, str] | None:
    """What a job of that weight is published with (nothing for the usual weight of 1)."""
    return None if weight == 1 else {WEIGHT_PROPERTY: str(weight)}


class LaneTurns:
    """Whose turn it is among a queue's lanes (0: its plain jobs): weighted round robin. A
    lane's turn starts up to the weight W of the job heading it as the turn begins; empty lanes
    are passed over. A lane whose turn ended early because its next jobs were still on their
    way from the broker is owed the rest, up to W - 1, in its next turn: so a turn starts at
    most 2W - 1 jobs, and a busy lane's share stays its weight's.

    `head_weight(lane)` is the weight of the job heading a lane; 0 for a lane whose jobs are on
    their way; None for an idle one, which is owed nothing."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self._current = 0
        self._left = 0  # jobs the current lane may still start in its turn
        self._turn_weight = 1
        self._owed = [0] * lanes

    def next(self, head_weight: Callable[[int], int | None]) -> int | None:
        """The lane to start a job from now, if any holds one."""
        if self._left > 0:
            weight = head_weight(self._current)
            if weight:
                self._left -= 1
                return self._current
            if weight == 0:  # refilling: what the turn could not start is owed
                self._owed[self._current] = min(self._left, self._turn_weight - 1)
            self._left = 0
        for step in range(1, self.lanes + 1):
            lane = (self._current + step) % self.lanes
            weight = head_weight(lane)
            if weight:
                self._current, self._turn_weight = lane, weight
                self._left, self._owed[lane] = weight - 1 + self._owed[lane], 0
                return lane
            if weight is None:
                self._owed[lane] = 0
        return None


def fair_of(
    call_key: str | None, call_weight: int | None, declared: FairKey | None,
    args: Sequence[Any], kwargs: Mapping[str, Any], queue: str, fair_queues: Callable[[], set[str]],
) -> tuple[str, int]:  # fmt: skip
    """A call's fair key and weight: its own, else as its job declares them. Only a queue whose
    jobs an app declares fair has lanes its workers serve."""
    key, weight = declared.of(args, kwargs) if declared is not None else ("", 1)
    if call_key is not None:
        key = check_key(call_key)
        if declared is None and queue not in fair_queues():
            raise ConfigurationError(
                f"queue {queue!r} has no fair lanes in this app: declare a job of it with "
                "fair_key= (workers serve the lanes of those queues)"
            )
    return key, weight if call_weight is None else check_weight(call_weight)


class Pending(Protocol):
    """A job waiting in the TestRunner (testing.py)."""

    @property
    def queue(self) -> str: ...

    @property
    def due(self) -> datetime: ...

    @property
    def message(self) -> MemoryMessage: ...

    def __lt__(self, other: Any, /) -> bool: ...


P = TypeVar("P", bound=Pending)


class FairTurns:
    """The TestRunner's lanes: of the jobs of a queue due now, the one a worker would start
    next, the first of each lane taking turns as `LaneTurns` says (no prefetch: each lane's
    first due job is ready)."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self._turns: dict[str, LaneTurns] = {}  # by queue
        self._chosen: object = None  # chosen and not yet taken: asked again, the same answer

    def head(self, pending: Iterable[P], head: P, now: datetime) -> P:
        due = max(now, head.due)
        firsts: dict[int, P] = {}  # by lane; 0: the queue's plain jobs
        for job in pending:
            if job is self._chosen and job.queue == head.queue:
                return job
            if job.queue == head.queue and job.due <= due:
                index = fair_lane_index(job.message.topic_name())
                lane = 0 if index is None else index + 1
                if lane not in firsts or job < firsts[lane]:
                    firsts[lane] = job
        turns = self._turns.setdefault(head.queue, LaneTurns(self.lanes + 1))

        def head_weight(lane: int) -> int | None:
            if (first := firsts.get(lane)) is None:
                return None
            return weight_of(first.message.properties()) if lane else 1

        chosen = turns.next(head_weight)
        job = head if chosen is None else firsts[chosen]
        self._chosen = job
        return job
