"""Durable jobs waiting for a signal, under the TestRunner: parked without a worker, resumed
once with the payload, timed out on the virtual clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from pulsarjobs import App, Durable, Settings, WaitTimedOut
from pulsarjobs.jobs import Job
from pulsarjobs.testing import TestRunner


@pytest.fixture
def app() -> App:
    return App(Settings())


@pytest.fixture
def runner(app: App) -> Iterator[TestRunner]:
    with TestRunner(app) as runner:
        yield runner


@pytest.fixture
def ran() -> Counter[str]:
    return Counter()


@pytest.fixture
def order_flow(app: App, ran: Counter[str]) -> Job[Any, Any]:
    def charge(order_id: str) -> str:
        ran["charge"] += 1
        return f"ch-{order_id}"

    def receipt(charge_id: str, shipment: dict[str, str]) -> str:
        ran["receipt"] += 1
        return f"{charge_id} shipped as {shipment['tracking']}"

    @app.job(durable=True)
    async def order(ctx: Durable, order_id: str) -> str:
        charge_id = await ctx.step("charge", charge, order_id)
        try:
            shipment = await ctx.wait_for(f"shipped:{order_id}", timeout=timedelta(days=2))
        except WaitTimedOut:
            return "never shipped"
        sent: str = await ctx.step("receipt", receipt, charge_id, shipment)
        return sent

    return order


def kinds(runner: TestRunner) -> list[str]:
    return [outcome.kind for outcome in runner.outcomes]


def test_a_signal_resumes_the_waiting_job_once_with_its_payload(
    app: App, runner: TestRunner, ran: Counter[str], order_flow: Job[Any, Any]
) -> None:
    order_flow.enqueue("o-1")
    runner.run_all(until=runner.now + timedelta(hours=1))
    assert kinds(runner) == ["parked"]  # waiting, holding no runner
    assert [wait.key for wait in runner.signals.waiting()] == ["shipped:o-1"]

    assert app.signal("shipped:o-1", {"tracking": "TR-9"}) == 1
    runner.run_all()  # the resumed copy, then the copy parked until the timeout
    assert ran == {"charge": 1, "receipt": 1}
    assert [o.value for o in runner.outcomes if o.kind == "done"] == ["ch-o-1 shipped as TR-9"]
    # The copy parked until the timeout reached the wait the resumed copy had passed.
    assert kinds(runner) == ["parked", "done", "superseded"]
    assert runner.signals.waiting() == []


def test_a_signal_sent_before_the_wait_is_kept_and_met_without_parking(
    app: App, runner: TestRunner, ran: Counter[str], order_flow: Job[Any, Any]
) -> None:
    assert app.signal("shipped:o-2", {"tracking": "TR-1"}) == 0  # nobody waits yet: kept
    order_flow.enqueue("o-2")
    runner.run_all()
    assert kinds(runner) == ["done"]
    assert runner.outcomes[0].value == "ch-o-2 shipped as TR-1"


def test_a_kept_signal_is_gone_after_its_keep_window(
    app: App, runner: TestRunner, order_flow: Job[Any, Any]
) -> None:
    app.signal("shipped:o-3", {"tracking": "TR-2"}, keep=timedelta(hours=1))
    runner.advance(timedelta(hours=2))
    order_flow.enqueue("o-3")
    runner.run_all()
    assert kinds(runner) == ["parked", "done"]
    assert runner.outcomes[-1].value == "never shipped"


def test_no_signal_by_the_timeout_raises_wait_timed_out_in_the_job_no_earlier(
    runner: TestRunner, ran: Counter[str], order_flow: Job[Any, Any]
) -> None:
    started = runner.now
    order_flow.enqueue("o-4")
    runner.run_all()
    assert runner.now - started >= timedelta(days=2)
    assert kinds(runner) == ["parked", "done"]
    assert runner.outcomes[-1].value == "never shipped"
    assert ran == {"charge": 1}


def test_one_signal_resumes_every_job_waiting_on_its_key_each_once(
    app: App, runner: TestRunner
) -> None:
    resumed: Counter[str] = Counter()

    @app.job(durable=True)
    def wait_for_go(ctx: Durable, name: str) -> None:
        payload = ctx.wait_for_sync("go", timeout=60)
        resumed[f"{name}:{payload}"] += 1

    for name in ("a", "b", "c"):
        wait_for_go.enqueue(name)
    runner.run_all(until=runner.now + timedelta(seconds=10))
    assert app.signal("go", 7) == 3
    runner.run_all()
    assert resumed == {"a:7": 1, "b:7": 1, "c:7": 1}
    assert Counter(kinds(runner)) == {"parked": 3, "done": 3, "superseded": 3}


def test_a_signal_after_the_timeout_resumes_nothing(
    app: App, runner: TestRunner, order_flow: Job[Any, Any]
) -> None:
    order_flow.enqueue("o-5")
    runner.run_all()
    assert app.signal("shipped:o-5", {"tracking": "late"}) == 0
    runner.run_all()
    assert kinds(runner) == ["parked", "done"]
