"""The feed: jobs from the broker, ready for the worker's runners, by priority.

Each queue has a `QueueFeed`: its Shared consumer (the queue's topic and the subscription's
retry topic), the client library's prefetch buffer behind it, and a thread that moves jobs from
that buffer to a small ready list — in batches while they flow, decoding them on the way (see
intake.py) and filing each in the lane of the runners that run its kind (async or sync). The
thread rings a lane's doorbell when jobs arrive, and every lane's when the queue has stayed
empty long enough to count as dry. `Feed` picks a lane's next job across queues: in strict
order (a lower queue runs only while every queue before it is dry) or by weight.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pulsar
import structlog

from pulsarjobs.envelope import Envelope, pulsar_schema
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.execution import Outcome
from pulsarjobs.settle import Delivery
from pulsarjobs.topics import DEAD_LETTER_SUBSCRIPTION, QueueTopics, check_queue_name

log = structlog.get_logger("pulsarjobs.feed")

RECEIVE_POLL_MS = 50  # how long a queue stays silent before it counts as dry
BATCH_WAIT_MS = 1  # how long a batch waits for more jobs once one came
NACK_DELAY_MS = 100  # a handed-back job is redelivered at once
CRASH_REDELIVERIES = 10  # deliveries without a verdict (worker crashes) before dead-lettering

# The runners a ready job waits for: the event loop's tasks, or runner threads.
Lane = int
LOOP_LANE, THREAD_LANE = 0, 1
LANES = (LOOP_LANE, THREAD_LANE)

# Rung by a fetch thread with the number of a lane's jobs that arrived; 0: look again (a queue
# ran dry, so lower queues may run).
Doorbell = Callable[[int], None]


@dataclass(slots=True)
class Ready:
    """A fetched job, decoded, waiting for a runner: `job` is its envelope, or the outcome of
    a message that must not run (no job at all)."""

    message: pulsar.Message
    delivery: Delivery
    job: Envelope | Outcome


# Turns a fetched message into a ready job and its lane; None when it needs no run (a second
# delivery of a message already settled, acknowledged by the intake).
Intake = Callable[["QueueFeed", pulsar.Message], "tuple[Lane, Ready] | None"]


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


def parse_weight(item: str, weight: str) -> int:
    if not weight.isdigit() or int(weight) < 1:
        raise ConfigurationError(f"queue {item!r}: the weight must be a whole number >= 1")
    return int(weight)


class Receiver(Protocol):
    """What a feed needs of a consumer (a pulsar.Consumer, or a fake in unit tests)."""

    def receive(self, timeout_millis: int | None = None) -> pulsar.Message: ...
    def batch_receive(self) -> Sequence[pulsar.Message]: ...
    def negative_acknowledge(self, message: pulsar.Message) -> None: ...
    def acknowledge(self, message: pulsar.Message) -> None: ...
    def close(self) -> None: ...


class QueueFeed:
    def __init__(
        self,
        queue: str,
        consumer: Receiver,
        room: int,
        intake: Intake,
        doorbell: Callable[[Lane, int], None],
    ) -> None:
        self.queue = queue
        self.consumer = consumer
        self.dry = False  # the broker had nothing for it lately: lower queues may run
        self._ready: tuple[deque[Ready], ...] = tuple(deque() for _ in LANES)
        self._room = room  # the thread fetches more only while fewer than this are ready
        self._has_room = threading.Event()
        self._intake = intake
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

    def take(self, lane: Lane) -> Ready | None:
        """The lane's next ready job, if any; callable from any thread."""
        try:
            ready = self._ready[lane].popleft()
        except IndexError:
            return None
        if not self._has_room.is_set() and self.waiting <= self._room // 2:
            self._has_room.set()
        return ready

    @property
    def waiting(self) -> int:
        """Jobs fetched and ready, for any runner."""
        return sum(len(ready) for ready in self._ready)

    def has_jobs(self, lane: Lane) -> bool:
        return bool(self._ready[lane])

    def give_back(self, message: pulsar.Message) -> None:
        """Not started: redelivered at once, to another worker if this one closes."""
        with contextlib.suppress(Exception):  # a closed consumer gives it back anyway
            self.consumer.negative_acknowledge(message)

    def give_back_ready(self) -> None:
        for lane in LANES:
            while (ready := self.take(lane)) is not None:
                self.give_back(ready.message)

    def close(self) -> None:
        """Unacknowledged jobs, the prefetched ones included, go back to other workers."""
        with contextlib.suppress(Exception):  # closed already, when quiet
            self.consumer.close()

    def _fetch_forever(self) -> None:
        while not self._stopped.is_set():
            if self.waiting >= self._room:
                self._has_room.clear()
                if self.waiting >= self._room:  # a take may have made room meanwhile
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
                log.warning("receive failed; retrying", queue=self.queue, error=str(exc))
                self._stopped.wait(1.0)
            return
        self._arrive([first])
        while not self._stopped.is_set() and self.waiting < self._room:
            try:
                batch = self.consumer.batch_receive()
            except Exception:  # closing: the next receive says so
                return
            if not batch:
                return
            self._arrive(batch)

    def _arrive(self, messages: Sequence[pulsar.Message]) -> None:
        """Decode what came (here, a batch at a time, not in the runners) and file each job in
        its lane; then ring the lanes that got some."""
        if self._stopped.is_set():  # came just as the worker turned quiet or stopped
            for message in messages:
                self.give_back(message)
            return
        arrived = [0 for _ in LANES]
        for message in messages:
            try:
                taken = self._intake(self, message)
            except Exception:
                log.exception("cannot take a job in; handing it back", queue=self.queue)
                self.give_back(message)
                continue
            if taken is not None:
                lane, ready = taken
                self._ready[lane].append(ready)
                arrived[lane] += 1
        self.dry = False
        for lane, count in enumerate(arrived):
            if count:
                self._doorbell(lane, count)

    def _ran_dry(self) -> None:
        if not self.waiting and not self.dry:
            self.dry = True
            for lane in LANES:
                self._doorbell(lane, 0)  # lower queues may run now


class Feed:
    """Every queue a worker serves, and the choice of the next job between them."""

    def __init__(
        self, plan: QueuePlan, consumers: Mapping[str, Receiver], room: int, intake: Intake
    ) -> None:
        self.plan = plan
        self.queues = tuple(
            QueueFeed(name, consumers[name], room, intake, self._ring) for name in plan.names
        )
        self.open = False  # while open, runners take jobs
        # Each lane's runners put their doorbell here.
        self.doorbells: list[Doorbell] = [lambda _arrived: None for _ in LANES]
        self._only = self.queues[0] if len(self.queues) == 1 else None

    def _ring(self, lane: Lane, arrived: int) -> None:
        self.doorbells[lane](arrived)

    def start(self) -> None:
        self.open = True
        for queue in self.queues:
            queue.start()

    def stop(self) -> None:
        """No more jobs for the runners; what was fetched and not taken goes back (blocks)."""
        self.open = False
        for queue in self.queues:
            queue.stop()

    def close(self) -> None:
        for queue in self.queues:
            queue.close()

    def has_jobs(self, lane: Lane) -> bool:
        """Whether jobs of a lane wait ready in any queue."""
        return any(queue.has_jobs(lane) for queue in self.queues)

    def pick(self, lane: Lane) -> tuple[QueueFeed, Ready] | None:
        """The next job for a lane's runner, by the plan's priorities."""
        if not self.open:
            return None
        if self._only is not None:
            ready = self._only.take(lane)
            return None if ready is None else (self._only, ready)
        return self._pick_strict(lane) if self.plan.strict else self._pick_weighted(lane)

    def _pick_strict(self, lane: Lane) -> tuple[QueueFeed, Ready] | None:
        """A job of the first queue holding one, unless a queue before it may still deliver
        one: it holds none at all yet and is not dry."""
        for queue in self.queues:
            ready = queue.take(lane)
            if ready is not None:
                return queue, ready
            if not queue.dry and not queue.waiting:
                return None
        return None

    def _pick_weighted(self, lane: Lane) -> tuple[QueueFeed, Ready] | None:
        weights = self.plan.weights
        holding = [i for i, queue in enumerate(self.queues) if queue.has_jobs(lane)]
        while holding:
            chosen = random.choices(holding, weights=[weights[i] for i in holding])[0]
            ready = self.queues[chosen].take(lane)
            if ready is not None:
                return self.queues[chosen], ready
            holding.remove(chosen)
        return None


def subscribe(
    client: pulsar.Client, topics: QueueTopics, subscription: str, prefetch: int, batch: int,
    name: str,
) -> pulsar.Consumer:  # fmt: skip
    """A Shared consumer of a queue and of its subscription's retry topic."""
    return client.subscribe(
        [topics.jobs, topics.retry],
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
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
    )


def keep_dead_letters(client: pulsar.Client, topics: QueueTopics) -> None:
    """A subscription on the dead-letter topic, so that its messages are kept until handled."""
    client.subscribe(
        topics.dead,
        DEAD_LETTER_SUBSCRIPTION,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    ).close()
