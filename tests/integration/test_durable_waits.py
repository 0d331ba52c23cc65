"""Durable jobs waiting for a signal on the real broker: parked without holding a worker,
resumed once by `pulsarjobs signal` (another App than the worker's), timed out no earlier than
asked, and met at once by a signal kept from before."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from pulsarjobs import App, Durable, WaitTimedOut
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread
from tests.integration.test_operations import cli, cli_json

TIMEOUT_S = 4.0


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = App(fresh_settings(broker))
    yield created
    created.close()


@pytest.fixture
def ran() -> Counter[str]:
    return Counter()


@pytest.fixture
def returned(app: App, ran: Counter[str]) -> list[str]:
    """What each run of `order` returned; `order` waits for its shipment up to TIMEOUT_S."""
    values: list[str] = []

    def charge(order_id: str) -> str:
        ran["charge"] += 1
        return f"ch-{order_id}"

    @app.job(durable=True)
    async def order(ctx: Durable, order_id: str) -> str:
        charge_id = await ctx.step("charge", charge, order_id)
        try:
            shipment = await ctx.wait_for(f"shipped:{order_id}", timeout=TIMEOUT_S)
        except WaitTimedOut:
            values.append("never shipped")
            return values[-1]
        ran["past the wait"] += 1
        values.append(f"{charge_id} shipped as {shipment['tracking']}")
        return values[-1]

    return values


def test_a_signal_from_the_cli_resumes_the_parked_job_once_with_its_payload(
    app: App, ran: Counter[str], returned: list[str]
) -> None:
    with worker_in_thread(app) as worker:
        app.jobs["order"].enqueue("o-1")
        wait_until(lambda: worker.stats.parked == 1, 60, 0.1)
        assert worker.busy == 0  # waiting holds no runner
        [listed] = cli_json(app.settings, "waiting")
        assert (listed["key"], listed["type"], listed["wait"]) == ("shipped:o-1", "order", "wait-1")
        assert "shipped:o-1" in cli(app.settings, "waiting").stdout
        sent = cli(app.settings, "signal", "shipped:o-1", "--data", '{"tracking": "TR-9"}')
        assert sent.exit_code == 0, sent.output
        assert "1 waiting job resumed" in sent.stdout
        wait_until(lambda: worker.stats.done == 1, 60, 0.1)
        assert cli_json(app.settings, "waiting") == []  # its wait is over
        # The copy parked until the timeout comes round, finds the wait passed, and ends.
        wait_until(lambda: worker.stats.duplicates == 1, TIMEOUT_S + 60, 0.2)
        stats = worker.stats
    assert returned == ["ch-o-1 shipped as TR-9"]
    assert ran == {"charge": 1, "past the wait": 1}
    assert (stats.parked, stats.done, stats.failed) == (1, 1, 0)


def test_no_signal_raises_wait_timed_out_in_the_job_no_earlier_than_its_timeout(
    app: App, ran: Counter[str], returned: list[str]
) -> None:
    with worker_in_thread(app) as worker:
        started = time.time()
        app.jobs["order"].enqueue("o-2")
        wait_until(lambda: worker.stats.done == 1, TIMEOUT_S + 60, 0.1)
        ended = time.time()
    assert returned == ["never shipped"]
    assert ended - started >= TIMEOUT_S
    assert ran == {"charge": 1}


def test_a_signal_kept_from_before_the_wait_meets_it_without_parking(
    app: App, returned: list[str]
) -> None:
    sent = cli_json(app.settings, "signal", "shipped:o-3", "--data", '{"tracking": "TR-1"}')
    assert sent["resumed"] == 0  # nobody waits yet: kept for 24 hours
    with worker_in_thread(app) as worker:
        app.jobs["order"].enqueue("o-3")
        wait_until(lambda: worker.stats.done == 1, 60, 0.1)
        stats = worker.stats
    assert returned == ["ch-o-3 shipped as TR-1"]
    assert stats.parked == 0


def test_a_signal_with_a_payload_that_is_not_json_says_so_in_one_line(app: App) -> None:
    sent = cli(app.settings, "signal", "k", "--data", "{nope")
    assert sent.exit_code != 0
    assert "not JSON" in sent.output


def test_a_short_keep_lets_a_later_wait_time_out(app: App, returned: list[str]) -> None:
    assert cli(app.settings, "signal", "shipped:o-4", "--keep", "1s").exit_code == 0
    time.sleep(1.5)
    with worker_in_thread(app) as worker:
        app.jobs["order"].enqueue("o-4")
        wait_until(lambda: worker.stats.done == 1, TIMEOUT_S + 60, 0.1)
    assert returned == ["never shipped"]  # the signal was no longer kept when it began to wait


def test_gather_fans_out_to_child_jobs_and_resumes_the_parent_with_their_values(app: App) -> None:
    @app.job()
    def square(n: int) -> int:
        return n * n

    totals: list[int] = []

    @app.job(durable=True)
    async def total(ctx: Durable, count: int) -> int:
        squares = await ctx.gather(*[square.call(n) for n in range(1, count + 1)])
        totals.append(sum(squares))
        return totals[-1]

    with worker_in_thread(app) as worker:
        total.enqueue(5)
        wait_until(lambda: worker.stats.done == 5 + 1, 60, 0.1)  # the children, the parent
        stats = worker.stats
    assert totals == [1 + 4 + 9 + 16 + 25]  # the code past the gather ran once
    # Parked until the children were done, unless they were done by the time it waited.
    assert stats.failed == 0 and stats.duplicates == 0
