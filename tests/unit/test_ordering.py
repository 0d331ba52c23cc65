"""The ordered feed's rule, with a fake consumer: one job of a key at a time, in order."""

from __future__ import annotations

from typing import Any

from pulsarjobs.worker.feed import Feed, QueuePlan
from tests.unit.test_feed import FakeConsumer, until


class Keyed:
    """A message with an order key, as Pulsar hands one."""

    def __init__(self, key: str, n: int) -> None:
        self.key, self.n = key, n

    def partition_key(self) -> str:
        return self.key

    def __repr__(self) -> str:
        return f"{self.key}{self.n}"


def test_a_keys_next_job_is_taken_only_once_the_one_before_is_done() -> None:
    jobs: list[Any] = [Keyed("a", 0), Keyed("a", 1), Keyed("b", 0), Keyed("a", 2)]
    ordered = FakeConsumer(jobs)
    feed = Feed(QueuePlan.parse("default"), {"default": FakeConsumer()}, 10, {"default": ordered})
    feed.start()
    try:
        until(lambda: feed.ordered[0].held == 4)
        first, second = feed.pick(), feed.pick()
        assert first is not None and second is not None
        assert [first[1], second[1]] == [jobs[0], jobs[2]]  # a0 and b0; a1 waits behind a0
        assert feed.pick() is None
        queue = first[0]
        queue.done(jobs[0])
        third = feed.pick()
        assert third is not None and third[1] is jobs[1]
        queue.give_back(jobs[1])  # not run: a2 behind it goes back too, after it
        assert ordered.given_back == [jobs[1], jobs[3]]
        assert feed.pick() is None
    finally:
        feed.stop()
