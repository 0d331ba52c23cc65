"""Results, chains and batches, the same in memory and on the broker."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from pulsarjobs import Durable, JobFailed
from tests.scenarios.harness import Driver, on_both

KEEP = timedelta(minutes=5)


@on_both()
def test_a_kept_result_is_the_value_or_the_last_error(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(keep_result=KEEP)
    def total(prices: list[int]) -> dict[str, int]:
        tally.ran()
        return {"sum": sum(prices), "count": len(prices)}

    @app.job(keep_result=KEEP, max_attempts=1)
    def refund(order: str) -> None:
        tally.ran()
        raise LookupError(f"no order {order}")

    summed = total.enqueue([3, 4, 5])
    refused = refund.enqueue("A-1")
    report = driver.drain(settled=2)

    assert report.verdicts == {summed: "done", refused: "dead"}
    assert app.result(summed, timeout=30) == {"sum": 12, "count": 3}
    with pytest.raises(JobFailed) as failed:
        app.result(refused, timeout=30)
    assert (failed.value.error_type, failed.value.error_message) == ("LookupError", "no order A-1")


@on_both()
def test_a_chain_passes_each_value_on_and_keeps_the_last(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job
    def download(url: str) -> str:
        tally.ran(url)
        return "a,b,c"

    @app.job
    def parse(csv: str) -> list[str]:
        tally.ran(csv)
        return csv.split(",")

    @app.job
    def store(rows: list[str], table: str) -> int:
        tally.ran(rows)
        return len(rows)

    chain = app.chain(
        download.call("https://example.com/report.csv"),
        parse.call(),
        store.call(table="reports"),
        pass_result=True,
        keep_result=KEEP,
    )
    report = driver.drain(settled=3)

    assert [run.note for run in report.sequence] == [
        "https://example.com/report.csv",
        "a,b,c",
        ["a", "b", "c"],
    ]
    assert report.verdicts == dict.fromkeys(chain.job_ids, "done")
    assert app.result(chain.last_id, timeout=30) == 3


@on_both()
def test_a_chain_link_cancelled_before_its_turn_never_runs_and_ends_the_chain(
    driver: Driver,
) -> None:
    app, tally = driver.app, driver.tally

    @app.job
    def step(n: int) -> int:
        tally.ran(n)
        return n

    chain = app.chain(step.call(1), step.call(2), step.call(3), keep_result=KEEP)
    app.cancel(chain.job_ids[1])  # not enqueued yet: its link before it has not run
    report = driver.drain(settled=2)

    assert report.notes("step") == [1]
    assert report.verdicts.get(chain.job_ids[0]) == "done"
    assert chain.job_ids[2] not in report.verdicts
    with pytest.raises(JobFailed, match="Cancelled"):
        app.result(chain.last_id, timeout=30)


@on_both()
def test_a_batch_fires_each_callback_once_after_all_its_jobs(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job
    def resize(n: int) -> None:
        tally.ran(n)
        tally.finish("gallery", n)

    @app.job
    def tell(what: str) -> None:
        tally.ran(what)
        tally.finish("gallery", what)

    with app.batch(on_success=tell.call("published"), on_complete=tell.call("told")) as batch:
        ids = [batch.enqueue(resize, n) for n in range(3)]
    report = driver.drain(settled=5)

    finished = report.order["gallery"]
    assert sorted(finished[:3]) == [0, 1, 2]
    assert sorted(finished[3:]) == ["published", "told"]
    callbacks = [f"{batch.id}.on_success", f"{batch.id}.on_complete"]
    assert report.runs_by_id() == dict.fromkeys([*ids, *callbacks], 1)
    assert report.verdicts == dict.fromkeys([*ids, *callbacks], "done")


@on_both()
def test_a_batch_with_a_dead_job_completes_but_does_not_succeed(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(max_attempts=1)
    def resize(n: int) -> None:
        tally.ran(n)
        if n == 1:
            raise OSError("corrupt image")

    @app.job
    def tell(what: str) -> None:
        tally.ran(what)

    with app.batch(on_success=tell.call("published"), on_complete=tell.call("told")) as batch:
        ids = [batch.enqueue(resize, n) for n in range(3)]
    report = driver.drain(settled=4)

    assert report.notes("tell") == ["told"]
    assert report.verdicts == {
        ids[0]: "done",
        ids[1]: "dead",
        ids[2]: "done",
        f"{batch.id}.on_complete": "done",
    }


@on_both()
def test_a_durable_job_runs_each_completed_step_once_across_a_retry_its_waits_and_children(
    driver: Driver,
) -> None:
    app, tally = driver.app, driver.tally
    failures = [1]  # `ship` fails once: the job is retried, from that step

    @app.job
    def square(n: int) -> int:
        tally.ran(n)
        return n * n

    def charge() -> str:
        tally.ran("charge")
        return "ch-1"

    def ship() -> str:
        tally.ran("ship")
        if failures:
            failures.pop()
            raise ConnectionError("the carrier is down")
        return "shipped"

    # In memory, the copies parked until the waits' timeouts run out on the virtual clock: the
    # result is kept longer than that, so that it is still there once they have.
    @app.job(durable=True, max_attempts=2, keep_result=timedelta(days=1))
    async def order(ctx: Durable, order_id: str) -> str:
        charged = await ctx.step("charge", charge)
        paid = await ctx.wait_for(f"paid:{order_id}", timeout=timedelta(minutes=10))
        squares = await ctx.gather(square.call(2), square.call(3), timeout=timedelta(minutes=10))
        await ctx.sleep(1)
        shipped = await ctx.step("ship", ship)
        return f"{charged} {paid['cents']} {sum(squares)} {shipped}"

    app.signal("paid:o-1", {"cents": 500})  # kept: met as the job waits
    job_id = order.enqueue("o-1")
    report = driver.drain(settled=3)

    assert report.verdicts[job_id] == "done"
    assert Counter(report.notes("order")) == {"charge": 1, "ship": 2}  # each stored step once
    assert sorted(report.notes("square")) == [2, 3]
    assert app.result(job_id, timeout=30) == "ch-1 500 13 shipped"
