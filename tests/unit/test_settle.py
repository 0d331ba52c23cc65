"""Settling decides what replaces a message; a second delivery is known by its message id."""

from __future__ import annotations

from pulsarjobs import App
from pulsarjobs.clock import utc_now
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.memory import MemoryConsumer, MemoryMessage, Outstanding, PublishedMessage
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, encode
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._queue_feed import QueueFeed


def test_only_the_same_message_counts_as_a_second_delivery() -> None:
    app = App()
    ran: list[str] = []

    @app.job
    def greet() -> None:
        ran.append("greet")

    data = encode(Envelope(id="job-1", type="greet", queue="default"))
    published = PublishedMessage("persistent://public/pulsarjobs/default", data, utc_now(), {})
    consumer = MemoryConsumer(Outstanding())
    queue = QueueFeed("default", consumer, 10, lambda _arrived: None)
    with TestRunner(app) as runner:
        pipeline = runner._pipeline  # the worker's own
        first = pipeline.take_in(queue, MemoryMessage(published, "10:1:-1"))
        assert first is not None
        pipeline.carry(first)
        assert pipeline.take_in(queue, MemoryMessage(published, "10:1:-1")) is None  # redelivered
        again = pipeline.take_in(queue, MemoryMessage(published, "10:2:-1"))  # enqueued again
        assert again is not None
        pipeline.carry(again)
    assert ran == ["greet", "greet"]
    assert runner.stats.duplicates == 1


def test_a_dead_job_is_published_with_its_reason_before_it_is_acked() -> None:
    app = App()

    @app.job(max_attempts=1)
    def fails() -> None:
        raise ValueError("no")

    with TestRunner(app) as runner:
        fails.enqueue()
        runner.run_all()
        [letter] = runner.dead_letters
    assert letter.topic == topics_for(app.settings, "default").dead
    assert letter.properties["pulsarjobs-reason"] == "failed 1 of 1 attempts"
    assert letter.properties["pulsarjobs-error"] == "ValueError: no"


def test_an_undecodable_message_keeps_its_bytes_in_the_dead_letter() -> None:
    with TestRunner(App()) as runner:
        runner.connection.publish("persistent://public/pulsarjobs/default", b"\xff junk")
        runner.run_all()
        [letter] = runner.dead_letters
        [outcome] = runner.outcomes
    assert letter.data == b"\xff junk"
    assert isinstance(outcome, Outcome) and outcome.kind == "undecodable"
    assert letter.properties["pulsarjobs-reason"].startswith("Undecodable")
