"""How a job ends, the same in memory and on the broker: retries, snoozes, dead letters,
expiry, cancel, and a process that dies under a job."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from pulsarjobs import RetryPolicy, Snooze
from tests.scenarios.harness import Driver, NoProcessToKill, on_both


def fast(max_attempts: int) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, initial_delay=0.2, jitter=0.0)


@on_both()
def test_a_job_that_fails_twice_runs_three_times_and_is_done(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(retry=fast(5))
    def flaky() -> None:
        if tally.ran().attempt < 3:
            raise ConnectionError("mail server busy")

    job_id = flaky.enqueue()
    report = driver.drain(settled=1)

    assert report.attempts(job_id) == [1, 2, 3]
    assert report.verdicts == {job_id: "done"}


@on_both()
def test_a_snoozed_job_runs_again_with_the_same_attempt(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(retry=fast(5))
    def waits_for_stock() -> None:
        if tally.ran().snoozes == 0:
            raise Snooze(0.2)

    job_id = waits_for_stock.enqueue()
    report = driver.drain(settled=1)

    assert report.attempts(job_id) == [1, 1]  # a snooze is no failed attempt
    assert report.verdicts == {job_id: "done"}


@on_both()
def test_a_job_that_always_fails_is_dead_lettered_after_its_attempts(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(retry=fast(2))
    def broken(target: str) -> None:
        tally.ran()
        raise ValueError(f"{target} is down")

    job_id = broken.enqueue("db")
    report = driver.drain(settled=1)

    assert report.attempts(job_id) == [1, 2]
    assert report.verdicts == {job_id: "dead"}
    assert report.dead_letters == {job_id: "ValueError: db is down"}


@on_both()
def test_a_job_past_its_expiry_never_runs(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job
    def flash_sale() -> None:
        tally.ran()

    stale = app.enqueue(flash_sale.call().with_options(expires_in=timedelta(seconds=0.3)))
    fresh = flash_sale.enqueue()
    driver.pass_time(0.5)  # before any worker takes it
    report = driver.drain(settled=2)

    assert report.runs_by_id() == {fresh: 1}
    assert report.verdicts == {stale: "expired", fresh: "done"}


@on_both()
def test_a_job_cancelled_before_its_time_never_runs(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job
    def reminder(who: str) -> None:
        tally.ran(who)

    cancelled = app.enqueue(reminder.call("ada"), in_=timedelta(seconds=1))
    kept = app.enqueue(reminder.call("bob"), in_=timedelta(seconds=1))
    app.cancel(cancelled)
    report = driver.drain(settled=2)

    assert report.notes("reminder") == ["bob"]
    assert report.verdicts == {cancelled: "cancelled", kept: "done"}


@on_both()
def test_a_job_cancelled_while_it_runs_stops_and_is_cancelled(driver: Driver) -> None:
    app, tally = driver.app, driver.tally
    started = threading.Event()

    @app.job
    async def export() -> None:
        tally.ran()
        started.set()
        await asyncio.sleep(60)  # its cancel stops it long before
        tally.finish("export", "finished")

    @app.job
    async def stop_export(job_id: str) -> None:
        tally.ran()
        if await asyncio.to_thread(started.wait, 30):
            app.cancel(job_id)

    export_id = export.enqueue()
    stopper = stop_export.enqueue(export_id)
    report = driver.drain(settled=2)

    assert report.runs_by_id() == {export_id: 1, stopper: 1}
    assert report.order == {}  # the export never got past its sleep
    assert report.verdicts == {export_id: "cancelled", stopper: "done"}


@on_both(
    broker=pytest.mark.xfail(
        raises=NoProcessToKill,
        strict=True,
        reason="the broker driver runs its Worker in the test's process; a death needs a "
        "worker under --processes, which this harness does not start yet",
    ),
)
def test_a_job_whose_process_died_runs_again_in_its_place(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(retry=fast(3))
    def step(n: int) -> None:
        tally.ran(n)
        tally.finish("account", n)

    driver.kill_process_in("step")  # as the first run of step 0 is over, before its ack
    ids = app.enqueue_many([step.call(n).with_options(order_key="account") for n in range(3)])
    report = driver.drain(settled=3)

    assert report.order == {"account": [0, 0, 1, 2]}  # run again, deferred, not overtaken
    assert report.attempts(ids[0]) == [1, 1]  # a death is no failed attempt
    assert report.verdicts == dict.fromkeys(ids, "done")
