"""The feed: jobs from the broker, ready for the worker's runners, by priority.

Each queue has a `QueueFeed` (_queue_feed.py), and its ordered jobs one more (_ordering.py); a
fair queue's lanes have one each, which take turns with its plain jobs (_fair.py).
`Feed` picks the next job across queues: in strict order (a lower queue runs only while every
queue before it is dry) or by weight.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulsar
import structlog

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.transport.schema_registry import pulsar_schema
from pulsarjobs.transport.topics import DEAD_LETTER_SUBSCRIPTION, QueueTopics, check_queue_name
from pulsarjobs.worker._fair import FairLanes, lane_room
from pulsarjobs.worker._ordering import OrderedQueueFeed
from pulsarjobs.worker._queue_feed import Doorbell, QueueFeed, Receiver

log = structlog.get_logger("pulsarjobs.feed")

BATCH_WAIT_MS = 1  # how long a batch waits for more jobs once one came
NACK_DELAY_MS = 100  # a handed-back job is redelivered at once
CRASH_REDELIVERIES = 10  # deliveries without a verdict (worker crashes) before dead-lettering


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """Which queues a worker serves and how it chooses between them."""

    names: tuple[str, ...]
    weights: tuple[int, ...]
    strict: bool

    @classmethod
    def parse(cls, spec: str | Sequence[str]) -> QueuePlan:
        """`critical,default,low`: strict order; `critical:6,default:3,low:1`: weighted."""
        items = [item.strip() for item in (spec.split(",") if isinstance(spec, str) else spec)]
        items = [item for item in items if item]
        if not items:
            raise ConfigurationError("give at least one queue, e.g. --queues default")
        weighted = [":" in item for item in items]
        if any(weighted) and not all(weighted):
            raise ConfigurationError(
                f"queues {','.join(items)!r}: give a weight to every queue or to none"
            )
        names, weights = [], []
        for item in items:
            name, _, weight = item.partition(":")
            names.append(check_queue_name(name))
            weights.append(parse_weight(item, weight) if weight else 1)
        if len(set(names)) != len(names):
            raise ConfigurationError(f"queues {','.join(items)!r}: a queue is named twice")
        return cls(tuple(names), tuple(weights), strict=not any(weighted))

    @classmethod
    def evenly(cls, names: Sequence[str]) -> QueuePlan:
        """Every queue of `names` weighted the same: none waits for another to run dry."""
        return cls.parse([f"{name}:1" for name in names])


def parse_weight(item: str, weight: str) -> int:
    if not weight.isdigit() or int(weight) < 1:
        raise ConfigurationError(f"queue {item!r}: the weight must be a whole number >= 1")
    return int(weight)


class Feed:
    """Every queue a worker serves, and the choice of the next job between them. A queue's
    ordered jobs (_ordering.py) have a feed of their own beside its other jobs, an equal peer."""

    def __init__(
        self,
        plan: QueuePlan,
        consumers: Mapping[str, Receiver],
        room: int,
        ordered_consumers: Mapping[str, Receiver] | None = None,
        lane_consumers: Mapping[str, Sequence[Receiver]] | None = None,
    ) -> None:
        self.plan = plan
        self.queues = tuple(QueueFeed(q, consumers[q], room, self._ring) for q in plan.names)
        self.ordered: tuple[QueueFeed, ...] = ()  # by the queues' order, when served
        if ordered_consumers is not None:
            self.ordered = tuple(
                OrderedQueueFeed(q, ordered_consumers[q], room, self._ring) for q in plan.names
            )
        self.open = False  # while open, runners take jobs
        self.doorbell: Doorbell = lambda _arrived: None  # the runners put theirs here
        # A fair queue's plain jobs and lanes, by the queues' order; None: not fair.
        self.fair: tuple[FairLanes | None, ...] = tuple(
            FairLanes(
                plain, [QueueFeed(plain.queue, lane, lane_room(room), self._ring) for lane in lanes]
            )
            if (lanes := (lane_consumers or {}).get(plain.queue))
            else None
            for plain in self.queues
        )
        lane_feeds = tuple(lane for fair in self.fair if fair for lane in fair.lanes)
        self._only = self.queues[0] if len(self.queues) == 1 and not lane_feeds else None
        # One queue: its ordered jobs ready, looked at before each pick (an emptiness check).
        self._only_ordered: deque[pulsar.Message] = deque()
        if self._only is not None and self.ordered:
            self._only_ordered = self.ordered[0]._ready
        self._ordered_first = False  # plain and ordered jobs of a queue take turns
        # has_jobs looks at them after every job
        self.all_queues = self.queues + self.ordered + lane_feeds

    def _ring(self, arrived: int) -> None:
        self.doorbell(arrived)

    def start(self) -> None:
        self.open = True
        for queue in self.all_queues:
            queue.start()

    def stop(self) -> None:
        """No more jobs for the runners; what was fetched and not taken goes back (blocks)."""
        self.open = False
        for queue in self.all_queues:
            queue.stop()

    def close(self) -> None:
        for queue in self.all_queues:
            queue.close()

    def has_jobs(self) -> bool:
        return any(queue.waiting and not queue.paused for queue in self.all_queues)

    def set_paused(self, queue: str, paused: bool) -> None:
        """Stop or restart taking a queue's jobs; callable from any thread."""
        changed = False
        for queue_feed in self.all_queues:
            if queue_feed.queue == queue and queue_feed.paused != paused:
                queue_feed.paused, changed = paused, True
        for fair in self.fair:
            if changed and not paused and fair is not None and fair.plain.queue == queue:
                fair.prime_again()
        if changed:
            self._ring(0)  # runners look again: at lower queues, or at this one again

    def pick(self) -> tuple[QueueFeed, pulsar.Message] | None:
        if not self.open:
            return None
        only = self._only
        if only is not None:
            if only.paused:
                return None
            if self._only_ordered:
                return self._take(0)
            message = only.take()
            return None if message is None else (only, message)
        return self._pick_strict() if self.plan.strict else self._pick_weighted()

    def _take(self, index: int) -> tuple[QueueFeed, pulsar.Message] | None:
        """A job of the queue at `index`: its plain and ordered jobs take turns."""
        plain = self.queues[index]
        if (fair := self.fair[index]) is not None:
            return self._take_fair(index, fair)
        if not self.ordered:
            message = plain.take()
            return None if message is None else (plain, message)
        self._ordered_first = not self._ordered_first
        pair = (self.ordered[index], plain) if self._ordered_first else (plain, self.ordered[index])
        for queue in pair:
            message = queue.take()
            if message is not None:
                return queue, message
        return None

    def _take_fair(self, index: int, fair: FairLanes) -> tuple[QueueFeed, pulsar.Message] | None:
        """A fair queue's ordered jobs take turns with its lanes' turns."""
        if self.ordered:
            self._ordered_first = not self._ordered_first
            if self._ordered_first and (message := self.ordered[index].take()) is not None:
                return self.ordered[index], message
        picked = fair.take()
        if picked is None and self.ordered and not self._ordered_first:
            message = self.ordered[index].take()
            return None if message is None else (self.ordered[index], message)
        return picked

    def _dry(self, index: int) -> bool:
        plain = self.queues[index] if (fair := self.fair[index]) is None else fair
        return plain.dry and (not self.ordered or self.ordered[index].dry)

    def _pick_strict(self) -> tuple[QueueFeed, pulsar.Message] | None:
        """A job of the first queue holding one, unless a queue before it may still deliver (a
        paused queue counts as dry)."""
        for index, queue in enumerate(self.queues):
            if queue.paused:
                continue
            picked = self._take(index)
            if picked is not None:
                return picked
            if not self._dry(index):
                return None
        return None

    def _pick_weighted(self) -> tuple[QueueFeed, pulsar.Message] | None:
        weights = self.plan.weights
        holding = [i for i, queue in enumerate(self.queues) if self._holds(i) and not queue.paused]
        while holding:
            chosen = random.choices(holding, weights=[weights[i] for i in holding])[0]
            picked = self._take(chosen)
            if picked is not None:
                return picked
            holding.remove(chosen)
        return None

    def _holds(self, index: int) -> bool:
        plain = self.queues[index] if (fair := self.fair[index]) is None else fair
        return bool(plain.waiting or (self.ordered and self.ordered[index].waiting))


def subscribe(
    client: pulsar.Client, topics: QueueTopics, subscription: str, prefetch: int, batch: int,
    name: str, ordered: bool = False, crypto: pulsar.CryptoKeyReader | None = None,
    lane: int | None = None,
) -> pulsar.Consumer:  # fmt: skip
    """A Shared consumer of a queue and of its subscription's retry topic; `ordered`: a
    Key_Shared one of the queue's ordered jobs (_ordering.py); `lane`: a Shared one of that fair
    lane (_fair.py). With `crypto`, it decrypts
    end-to-end encrypted jobs; a job it cannot decrypt is never delivered to it (the client's
    default failure action): the job stays stored, the client logs the failure, and the job
    goes to a worker with the key once this one stops. Never dead-lettered: a copy re-sent
    would lose the message's encryption keys, and so the job."""
    return client.subscribe(
        [topics.ordered]
        if ordered
        else [topics.jobs, topics.retry]
        if lane is None
        else [topics.lane(lane)],
        subscription,
        consumer_type=pulsar.ConsumerType.KeyShared if ordered else pulsar.ConsumerType.Shared,
        schema=pulsar_schema(),
        receiver_queue_size=prefetch,
        consumer_name=name,
        initial_position=pulsar.InitialPosition.Earliest,
        negative_ack_redelivery_delay_ms=NACK_DELAY_MS,
        batch_index_ack_enabled=True,
        batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(batch, 0, BATCH_WAIT_MS),
        # The backstop for jobs that crash the worker itself: redelivered this often, dead.
        dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(
            max_redeliver_count=CRASH_REDELIVERIES,
            dead_letter_topic=topics.dead,
            initial_subscription_name=DEAD_LETTER_SUBSCRIPTION,
        ),
        crypto_key_reader=crypto,
    )


def keep_dead_letters(client: pulsar.Client, topics: QueueTopics) -> None:
    """A subscription on the dead-letter topic, so that its messages are kept until handled."""
    client.subscribe(
        topics.dead,
        DEAD_LETTER_SUBSCRIPTION,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    ).close()
