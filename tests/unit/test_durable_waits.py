"""Durable jobs waiting for a signal, under the TestRunner: parked without a worker, resumed
once with the payload, timed out on the virtual clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from pulsarjobs import App, ChildFailed, Durable, WaitTimedOut
from pulsarjobs.jobs import Job
from pulsarjobs.testing import TestRunner
from pulsarjobs.workflows.signals import goes_on


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


def test_gather_runs_children_while_the_parent_is_parked_and_resumes_it_with_their_values(
    app: App, runner: TestRunner
) -> None:
    @app.job()
    def square(n: int) -> int:
        return n * n

    @app.job(durable=True)
    async def total(ctx: Durable, count: int) -> int:
        squares = await ctx.gather(*[square.call(n) for n in range(1, count + 1)])
        return sum(squares)

    total.enqueue(3)
    runner.run_all()
    [done] = [o for o in runner.outcomes if o.kind == "done" and o.envelope.type == "total"]
    assert done.value == 1 + 4 + 9
    assert runner.runs(square) == 3
    assert runner.stats.parked >= 1  # it held no runner while its children ran


def test_a_child_that_fails_for_good_raises_child_failed_in_its_parent(
    app: App, runner: TestRunner
) -> None:
    @app.job(max_attempts=1)
    def flaky() -> None:
        raise ValueError("card declined")

    @app.job(durable=True)
    def parent(ctx: Durable) -> str:
        try:
            ctx.child_sync(flaky.call())
        except ChildFailed as failed:
            return f"{failed.error_type}: {failed.error_message}"
        return "ok"

    parent.enqueue()
    runner.run_all()
    [done] = [o for o in runner.outcomes if o.kind == "done"]
    assert done.value == "ValueError: card declined"


def test_a_job_resumed_by_two_signals_in_turn_is_done_by_the_second_not_at_a_timeout(
    app: App, runner: TestRunner
) -> None:
    @app.job(durable=True)
    def approvals(ctx: Durable) -> str:
        first = ctx.wait_for_sync("manager", timeout=timedelta(days=7))
        second = ctx.wait_for_sync("finance", timeout=timedelta(days=7))
        return f"{first}+{second}"

    approvals.enqueue()
    hour = timedelta(hours=1)
    runner.run_all(until=runner.now + hour)
    assert app.signal("manager", "ok") == 1
    runner.run_all(until=runner.now + hour)
    assert app.signal("finance", "ok too") == 1
    runner.run_all(until=runner.now + hour)  # well before either timeout
    assert kinds(runner) == ["parked", "parked", "done"]
    assert runner.outcomes[-1].value == "ok+ok too"
    runner.run_all()  # the two copies parked until the timeouts: each ends at its wait
    assert kinds(runner)[3:] == ["superseded", "superseded"]


@pytest.mark.parametrize(
    ("claimed_by", "copy", "wait", "goes"),
    [
        ([], [], "w1", True),  # the job as enqueued claimed it: itself
        ([], ["w1@a"], "w1", False),  # the copy a signal made for w1 lost it to a timeout
        (["w1@a"], [], "w1", False),  # the copy parked until the timeout, once w1 was signalled
        (["w1@a"], ["w1@a", "w2@b"], "w1", True),  # made later on the claimant's line
        (["w1@a", "w2@b"], ["w1@a"], "w2", False),  # that line's copy parked at w2
        ([], ["w2@b"], "w1", True),  # the enqueued job claimed w1, then was resumed at w2
        (["w1@a"], ["w1@x", "w2@b"], "w1", False),  # another line
    ],
)
def test_which_copy_of_a_job_goes_on_past_a_claimed_wait(
    claimed_by: list[str], copy: list[str], wait: str, goes: bool
) -> None:
    assert goes_on(claimed_by, copy, wait) is goes


def test_an_iteration_resumes_after_the_last_stored_position_when_a_run_fails(
    app: App, runner: TestRunner
) -> None:
    processed: Counter[int] = Counter()

    def numbers_after(cursor: int | None) -> Iterator[tuple[int, int]]:
        start = 0 if cursor is None else cursor
        return ((n + 1, n) for n in range(start, 25))

    @app.job(durable=True, max_attempts=2)
    def export(ctx: Durable) -> int:
        for n in ctx.iterate_sync("rows", numbers_after, every=10):
            if n == 17 and sum(processed.values()) < 20:
                raise RuntimeError("the database went away")
            processed[n] += 1
        return sum(processed.values())

    job_id = export.enqueue()
    runner.run_all()
    assert kinds(runner) == ["retry", "done"]
    # 0-9 stored at 10; 10-16 processed, then the failure: the retry goes on from 10.
    assert [n for n, times in processed.items() if times > 1] == list(range(10, 17))
    assert set(processed) == set(range(25))
    position = runner.steps.value(job_id, "rows")
    assert position == {"cursor": 25, "count": 25, "done": True}


def test_a_finished_iteration_is_not_run_again_by_a_later_run(app: App, runner: TestRunner) -> None:
    processed: list[str] = []

    async def letters_after(cursor: int | None) -> AsyncIterator[tuple[int, str]]:
        for index, letter in enumerate("abc"[cursor or 0 :], start=cursor or 0):
            yield index + 1, letter

    @app.job(durable=True)
    async def spell(ctx: Durable) -> str:
        async for letter in ctx.iterate("letters", letters_after):
            processed.append(letter)
        await ctx.sleep(60)  # the run after the sleep passes the iteration by
        return "".join(processed)

    spell.enqueue()
    runner.run_all()
    assert kinds(runner) == ["parked", "done"]
    assert runner.outcomes[-1].value == "abc"
