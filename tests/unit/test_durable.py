"""Durable jobs under the TestRunner: steps stored, not run again; sleeps on the virtual clock."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta

import fastavro
import pytest

from pulsarjobs import App, ArgumentError, Durable, Envelope
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.operations.durable_steps import DurableStep, asleep_until, step_of
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.values import to_value
from pulsarjobs.workflows.durable_store import FIRST_STEP_SCHEMA, decode_record, decode_step


def test_a_retry_resumes_at_the_step_that_failed(app: App, runner: TestRunner) -> None:
    ran: Counter[str] = Counter()

    def charge(order_id: str) -> dict[str, str]:
        ran["charge"] += 1
        return {"order": order_id, "charge": "ch-1"}

    async def reserve(order_id: str) -> list[str]:
        ran["reserve"] += 1
        if ran["reserve"] == 1:
            raise RuntimeError("warehouse down")
        return [order_id, "shelf-7"]

    def ship(charged: dict[str, str], reserved: list[str]) -> str:
        ran["ship"] += 1
        return f"{charged['charge']}:{reserved[1]}"

    @app.job(durable=True, retry=RetryPolicy(max_attempts=3, jitter=0.0))
    async def place_order(ctx: Durable, order_id: str) -> str:
        charged = await ctx.step("charge", charge, order_id)
        reserved = await ctx.step("reserve", reserve, order_id)
        shipped: str = await ctx.step("ship", ship, charged, reserved)
        return shipped

    job_id = place_order.enqueue("o-1")
    runner.run_all()
    assert ran == {"charge": 1, "reserve": 2, "ship": 1}
    assert [outcome.kind for outcome in runner.outcomes] == ["retry", "done"]
    assert runner.outcomes[-1].value == "ch-1:shelf-7"
    assert runner.steps.value(job_id, "reserve") == ["o-1", "shelf-7"]


def test_a_sleep_parks_the_job_and_it_resumes_once_the_clock_reaches_its_wake_up(
    app: App, runner: TestRunner
) -> None:
    ran: Counter[str] = Counter()

    def step(name: str) -> str:
        ran[name] += 1
        return name

    @app.job(durable=True)
    async def remind(ctx: Durable, user: str) -> None:
        await ctx.step("welcome", step, "welcome")
        await ctx.sleep(timedelta(days=3))
        await ctx.step("nudge", step, "nudge")

    started = runner.now
    remind.enqueue("u-1")
    first = runner.run_next()
    assert first is not None and first.kind == "parked"
    [parked] = runner.pending
    assert parked.attempt == 1 and parked.run_at is not None
    assert timedelta(days=3) <= parked.run_at - started < timedelta(days=3, seconds=1)
    assert ran == {"welcome": 1}
    assert runner.run_next() is None  # not due: never early
    runner.run_all()
    assert runner.now - started >= timedelta(days=3)
    assert ran == {"welcome": 1, "nudge": 1}
    assert [outcome.kind for outcome in runner.outcomes] == ["parked", "done"]
    assert runner.stats.parked == 1 and runner.stats.done == 1


def test_a_sync_durable_job_uses_step_sync_and_sleep_sync(app: App, runner: TestRunner) -> None:
    ran: Counter[str] = Counter()

    def count(name: str) -> int:
        ran[name] += 1
        return ran[name]

    @app.job(durable=True)
    def nightly(ctx: Durable, times: int) -> int:
        total = 0
        for index in range(times):
            total += ctx.step_sync(f"count-{index}", count, f"count-{index}")
            ctx.sleep_sync(60)
        return total

    nightly.enqueue(2)
    runner.run_all()
    assert ran == {"count-0": 1, "count-1": 1}
    assert [outcome.kind for outcome in runner.outcomes] == ["parked", "parked", "done"]
    assert runner.outcomes[-1].value == 2


def test_the_context_is_not_an_argument_at_enqueue_nor_in_the_worker(
    app: App, runner: TestRunner
) -> None:
    @app.job(durable=True)
    async def typed(ctx: Durable, count: int) -> int:
        return count

    with pytest.raises(ArgumentError, match="expected int"):
        typed.enqueue("three")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        typed.enqueue(1, 2)  # type: ignore[call-arg]
    typed.enqueue(3)
    runner.run_all()
    assert runner.outcomes[-1].value == 3
    assert str(typed.signature) == "(count: 'int') -> 'int'"
    # In the worker too: what no enqueue checked (another client's job) is dead there.
    for args in (("three",), (1, 2)):
        app.publish_envelope(Envelope(id=f"bad-{len(args)}", type="typed", queue="default",
                                      args=args)).result()  # fmt: skip
    runner.run_all()
    assert [dead.last_error.type for dead in runner.dead if dead.last_error] == [
        "pulsarjobs.BadArguments"
    ] * 2


def test_a_durable_job_needs_a_context_parameter(app: App) -> None:
    with pytest.raises(ConfigurationError, match="first parameter"):

        @app.job(durable=True)
        def nothing() -> None: ...


def test_a_step_name_used_twice_in_a_run_fails_it(app: App, runner: TestRunner) -> None:
    @app.job(durable=True, max_attempts=1)
    async def twice(ctx: Durable) -> None:
        await ctx.step("same", str, 1)
        await ctx.step("same", str, 2)

    twice.enqueue()
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None and "used twice" in dead.last_error.message


def test_a_step_value_that_is_no_job_argument_fails_the_step(app: App, runner: TestRunner) -> None:
    @app.job(durable=True, max_attempts=1)
    async def unencodable(ctx: Durable) -> None:
        await ctx.step("set", lambda: {1, 2})

    unencodable.enqueue()
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None
    assert dead.last_error.type.endswith(ArgumentError.__name__)


def test_operators_see_each_step_with_its_duration_and_a_sleep_until_it_is_over(
    app: App, runner: TestRunner
) -> None:
    def charge(order_id: str) -> str:
        runner.advance(timedelta(seconds=2))  # the card network takes its time
        return f"charged {order_id}"

    @app.job(durable=True)
    async def place_order(ctx: Durable, order_id: str) -> None:
        await ctx.step("charge", charge, order_id)
        await ctx.sleep(timedelta(hours=1), name="cool-off")

    job_id = place_order.enqueue("o-1")
    started = runner.now
    runner.run_next()

    def shown() -> list[DurableStep]:
        stored = runner.steps.read(job_id)
        return [step_of(name, data, runner.now) for name, data in stored.items()]

    charged, sleep = shown()
    assert (charged.name, charged.kind, charged.state) == ("charge", "step", "done")
    assert (charged.value, charged.seconds) == ("charged o-1", 2.0)
    to_the_milli = timedelta(milliseconds=1)  # as stored
    assert charged.started_at is not None and abs(charged.started_at - started) < to_the_milli
    assert (sleep.name, sleep.kind, sleep.state) == ("cool-off", "sleep", "sleeping")
    assert sleep.wakes_at is not None
    assert abs(sleep.wakes_at - (started + timedelta(hours=1, seconds=2))) <= to_the_milli
    assert asleep_until([charged, sleep]) == sleep.wakes_at
    runner.advance(timedelta(hours=1, seconds=1))
    assert [step.state for step in shown()] == ["done", "over"]
    assert asleep_until(shown()) is None


def test_a_step_stored_by_the_first_version_still_reads() -> None:
    stream = io.BytesIO()
    first = fastavro.parse_schema(FIRST_STEP_SCHEMA)
    stored_at = datetime(2026, 1, 4, 9, 0, tzinfo=UTC)
    record = {"stored_at": stored_at, "value": to_value(["o-1", 3])}
    fastavro.schemaless_writer(stream, first, record)
    stored = decode_record(stream.getvalue())
    assert (stored.value, stored.stored_at) == (["o-1", 3], stored_at)
    assert (stored.started_at, stored.kind) == (None, "step")
    assert decode_step(stream.getvalue()) == ["o-1", 3]


def test_a_step_with_its_own_retry_policy_parks_the_job_until_its_backoff_is_over(
    app: App, runner: TestRunner
) -> None:
    ran: Counter[str] = Counter()

    def reserve() -> str:
        ran["reserve"] += 1
        return "reserved"

    def call_carrier() -> str:
        ran["carrier"] += 1
        if ran["carrier"] < 3:
            raise ConnectionError("the carrier's API is down")
        return "booked"

    @app.job(durable=True, max_attempts=1)
    async def ship(ctx: Durable) -> str:
        reserved: str = await ctx.step("reserve", reserve)
        policy = RetryPolicy(max_attempts=5, initial_delay=60, jitter=0.0)
        booked: str = await ctx.step("carrier", call_carrier, retry=policy)
        return f"{reserved}, {booked}"

    started = runner.now
    ship.enqueue()
    runner.run_all()
    assert [outcome.kind for outcome in runner.outcomes] == ["parked", "parked", "done"]
    assert ran == {"reserve": 1, "carrier": 3}
    assert runner.outcomes[-1].envelope.attempt == 1  # the job's own attempts are untouched
    assert runner.now - started >= timedelta(seconds=60 + 120)  # its backoff, never early


def test_a_step_out_of_its_own_attempts_fails_the_run(app: App, runner: TestRunner) -> None:
    def always_down() -> None:
        raise ConnectionError("down for good")

    @app.job(durable=True, max_attempts=1)
    def book(ctx: Durable) -> None:
        ctx.step_sync("carrier", always_down, retry=RetryPolicy(max_attempts=2, jitter=0.0))

    book.enqueue()
    runner.run_all()
    assert [outcome.kind for outcome in runner.outcomes] == ["parked", "dead"]
    [dead] = runner.dead
    assert dead.last_error is not None and dead.last_error.message == "down for good"
