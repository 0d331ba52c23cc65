"""Flow control, the same in memory and on the broker: unique, ordered, concurrency and rate
limits."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

from pulsarjobs import RetryPolicy
from pulsarjobs.flow.fairness import lane_of
from tests.scenarios.harness import Driver, on_both


@on_both()
def test_the_same_unique_key_twice_makes_one_job_that_runs_once(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(unique_for=timedelta(minutes=5))
    def refresh_feed(feed_id: int) -> None:
        tally.ran(feed_id)

    first = refresh_feed.enqueue(42)
    again = refresh_feed.enqueue(42)
    other = refresh_feed.enqueue(7)
    report = driver.drain(settled=2)

    assert again == first
    assert report.runs_by_id() == {first: 1, other: 1}
    assert report.verdicts == {first: "done", other: "done"}


@on_both()
def test_an_ordered_key_finishes_in_enqueue_order_through_a_retry(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=0.2, jitter=0.0))
    def apply_event(n: int) -> None:
        if tally.ran(n).attempt == 1 and n == 0:
            raise ConnectionError("ledger busy")
        tally.finish("account:1", n)

    ids = app.enqueue_many(
        [apply_event.call(n).with_options(order_key="account:1") for n in range(5)]
    )
    report = driver.drain(settled=5)

    assert report.order == {"account:1": [0, 1, 2, 3, 4]}
    assert report.attempts(ids[0]) == [1, 2]
    assert report.verdicts == dict.fromkeys(ids, "done")


@on_both()
def test_a_concurrency_limit_of_two_runs_two_at_once_never_more(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(concurrency_limit=2)
    def call_partner(n: int) -> None:
        tally.ran(n)
        with tally.running(partner_within=5.0):
            time.sleep(0.2)  # long enough for a third to start, were the limit not applied

    ids = app.enqueue_many([call_partner.call(n) for n in range(6)])
    report = driver.drain(settled=6)

    assert report.runs_by_id() == dict.fromkeys(ids, 1)
    assert report.verdicts == dict.fromkeys(ids, "done")
    assert report.most_running == 2


@on_both()
def test_a_slot_a_short_job_frees_goes_to_the_next_job_while_a_long_one_runs(
    driver: Driver,
) -> None:
    app, tally = driver.app, driver.tally
    signalled = threading.Event()

    @app.job
    async def waits_for_the_signal() -> None:
        tally.ran()
        tally.finish("signal", await asyncio.to_thread(signalled.wait, 30))

    @app.job
    def quick(n: int) -> None:
        tally.ran(n)

    @app.job
    def signal() -> None:
        tally.ran()
        signalled.set()

    # one more than a worker's 10 slots between the long job and the one it waits for
    calls = [waits_for_the_signal.call(), *(quick.call(n) for n in range(10)), signal.call()]
    ids = app.enqueue_many(calls)
    report = driver.drain(settled=len(ids))

    assert report.order == {"signal": [True]}  # not held until the long job's 30 s were up
    assert report.verdicts == dict.fromkeys(ids, "done")


@on_both()
def test_rate_limited_jobs_each_run_once(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(rate_limit=20)
    def paced(n: int) -> None:
        tally.ran(n)

    ids = app.enqueue_many([paced.call(n) for n in range(6)])
    report = driver.drain(settled=6)

    assert sorted(report.notes("paced")) == list(range(6))
    assert report.verdicts == dict.fromkeys(ids, "done")


@on_both()
def test_a_small_key_starts_before_a_deep_keys_backlog_and_a_failed_fair_job_retries(
    driver: Driver,
) -> None:
    app, tally = driver.app, driver.tally

    @app.job(fair_key=lambda tenant, n: tenant,
             retry=RetryPolicy(max_attempts=2, initial_delay=0.2, jitter=0.0))  # fmt: skip
    def build_report(tenant: str, n: int) -> None:
        if tally.ran((tenant, n)).attempt == 1 and (tenant, n) == ("deep", 0):
            raise ConnectionError("report store busy")

    lanes = app.settings.fair_lanes
    deep_lane = lane_of("deep", lanes)
    small = next(f"small-{n}" for n in range(99) if lane_of(f"small-{n}", lanes) != deep_lane)
    calls = [build_report.call("deep", n) for n in range(60)] + [build_report.call(small, 0)]
    ids = app.enqueue_many(calls)
    report = driver.drain(settled=61)

    # Two lanes hold jobs: the small key's job waits for one turn of the deep key's lane, plus
    # (on the broker) what the worker's 10 runners took at once; not for its 60 jobs.
    tenants = [tenant for tenant, _ in report.notes("build_report")]
    assert tenants.index(small) <= 1 + 10
    assert report.verdicts == dict.fromkeys(ids, "done")
    assert report.attempts(ids[0]) == [1, 2]  # the retry came back and ran
