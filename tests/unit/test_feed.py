"""The feed's rules, with a fake consumer in place of Pulsar's: which job runs next, how many
wait ready, and that nothing fetched is kept when the worker stops taking jobs."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import pulsar
import pytest

from pulsarjobs.worker.feed import BATCH_WAIT_MS, Feed, QueuePlan


class FakeConsumer:
    """Holds a queue's messages as the client's prefetch buffer would."""

    def __init__(self, messages: Sequence[str] = (), batch: int = 8) -> None:
        self.held: deque[str] = deque(messages)
        self.batch = batch
        self.given_back: list[str] = []
        self.receives = 0

    def receive(self, timeout_millis: int | None = None) -> Any:
        self.receives += 1
        if not self.held:
            time.sleep((timeout_millis or 0) / 1000)
            raise pulsar.Timeout()
        return self.held.popleft()

    def batch_receive(self) -> list[Any]:
        if not self.held:
            time.sleep(BATCH_WAIT_MS / 1000)
        return [self.held.popleft() for _ in range(min(self.batch, len(self.held)))]

    def negative_acknowledge(self, message: Any) -> None:
        self.given_back.append(message)

    def acknowledge(self, message: Any) -> None: ...

    def close(self) -> None: ...


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def started_feed(spec: str, consumers: dict[str, FakeConsumer], room: int = 4) -> Feed:
    feed = Feed(QueuePlan.parse(spec), consumers, room)
    feed.start()
    return feed


def picked_queue(feed: Feed) -> str | None:
    picked = feed.pick()
    return None if picked is None else picked[0].queue


def test_strict_order_takes_the_first_queue_that_holds_a_job() -> None:
    consumers = {"critical": FakeConsumer(["c1"]), "low": FakeConsumer(["l1"])}
    feed = started_feed("critical,low", consumers)
    try:
        until(lambda: all(queue.waiting for queue in feed.queues))
        assert picked_queue(feed) == "critical"
        until(lambda: feed.queues[0].dry)
        assert picked_queue(feed) == "low"
    finally:
        feed.stop()


def test_a_lower_queue_waits_until_every_queue_before_it_is_dry() -> None:
    consumers = {"critical": FakeConsumer(), "low": FakeConsumer(["l1"])}
    feed = Feed(QueuePlan.parse("critical,low"), consumers, 4)
    critical, low = feed.queues
    feed.start()
    try:
        until(lambda: low.waiting > 0)
        if not critical.dry:  # the broker may still deliver a critical job: the low one waits
            assert feed.pick() is None
        until(lambda: critical.dry)  # nothing came for one receive poll
        assert picked_queue(feed) == "low"
    finally:
        feed.stop()


def test_weighted_queues_are_picked_in_proportion_to_their_weights() -> None:
    consumers = {"a": FakeConsumer([f"a{i}" for i in range(2000)], batch=200),
                 "b": FakeConsumer([f"b{i}" for i in range(2000)], batch=200)}  # fmt: skip
    feed = started_feed("a:3,b:1", consumers, room=1000)
    try:
        until(lambda: all(queue.waiting >= 400 for queue in feed.queues))
        picks = Counter(picked_queue(feed) for _ in range(400))
        assert 0.65 < picks["a"] / 400 < 0.85
    finally:
        feed.stop()


def test_at_most_about_room_jobs_wait_ready_the_rest_stay_with_the_client() -> None:
    consumer = FakeConsumer([f"m{i}" for i in range(100)], batch=4)
    feed = started_feed("default", {"default": consumer}, room=8)
    try:
        until(lambda: feed.queues[0].waiting >= 8)
        time.sleep(0.1)
        assert feed.queues[0].waiting < 8 + 4  # one batch past the room at most
        assert len(consumer.held) > 80
        taken = [feed.pick() for _ in range(6)]
        assert all(taken)
        until(lambda: feed.queues[0].waiting >= 8)  # room made: it fetches again
    finally:
        feed.stop()


def test_stopping_hands_back_every_job_fetched_and_not_taken() -> None:
    consumer = FakeConsumer([f"m{i}" for i in range(5)])
    feed = started_feed("default", {"default": consumer}, room=10)
    until(lambda: feed.queues[0].waiting == 5)
    picked = feed.pick()
    assert picked is not None
    feed.stop()
    assert sorted(consumer.given_back) == ["m1", "m2", "m3", "m4"]
    assert feed.pick() is None  # a closed feed gives no job


def test_the_doorbell_tells_arrivals_and_a_queue_running_dry() -> None:
    rings: list[int] = []
    rung = threading.Event()
    consumer = FakeConsumer(["m1", "m2", "m3"])
    feed = Feed(QueuePlan.parse("default"), {"default": consumer}, 10)

    def doorbell(arrived: int) -> None:
        rings.append(arrived)
        if arrived == 0:
            rung.set()

    feed.doorbell = doorbell
    feed.start()
    try:
        until(lambda: sum(rings) == 3)  # jobs told as they came
        assert not rung.wait(0.2)  # jobs wait ready: the queue is not dry
        while feed.pick() is not None:
            pass
        assert rung.wait(5)  # nothing more came: "dry"
    finally:
        feed.stop()


@pytest.mark.parametrize("spec", ["default", "critical,default,low", "a:1,b:2"])
def test_a_feed_that_was_never_started_gives_nothing(spec: str) -> None:
    plan = QueuePlan.parse(spec)
    feed = Feed(plan, {name: FakeConsumer(["x"]) for name in plan.names}, 4)
    assert feed.pick() is None
