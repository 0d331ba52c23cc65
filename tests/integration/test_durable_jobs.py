"""Durable jobs on the real broker: a completed step is stored on the compacted steps topic and
not run again — after a sleep that parks the job, and after a run that failed past it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pulsarjobs import App, Durable, current_job
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.topics import steps_topic
from pulsarjobs.workflows.durable_store import decode_step
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, read_topic, wait_until, worker_in_thread

SLEEP_SECONDS = 2.0


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = App(fresh_settings(broker))
    yield created
    created.close()


def test_a_durable_job_sleeps_parked_and_resumes_past_its_completed_step(app: App) -> None:
    ran: Counter[str] = Counter()
    runs: list[float] = []  # when each run started

    def charge(order_id: str) -> str:
        ran["charge"] += 1
        return f"charged {order_id}"

    async def ship(order_id: str) -> str:
        ran["ship"] += 1
        return f"shipped {order_id}"

    @app.job(durable=True)
    async def place_order(ctx: Durable, order_id: str) -> str:
        runs.append(time.time())
        charged = await ctx.step("charge", charge, order_id)
        await ctx.sleep(timedelta(seconds=SLEEP_SECONDS))
        shipped = await ctx.step("ship", ship, order_id)
        return f"{charged}, {shipped}"

    with worker_in_thread(app) as worker:
        job_id = place_order.enqueue("o-1")
        wait_until(lambda: worker.stats.done == 1, 90, 0.2)
        stats = worker.stats
    assert ran == {"charge": 1, "ship": 1}
    assert len(runs) == 2
    assert runs[1] >= runs[0] + SLEEP_SECONDS - 0.001  # no earlier than its wake-up
    assert (stats.parked, stats.done, stats.failed, stats.dead) == (1, 1, 0, 0)
    stored = {
        message.partition_key(): message.data()
        for message in read_topic(app.settings, steps_topic(app.settings))
    }
    assert decode_step(stored[f"{job_id}/charge"]) == "charged o-1"
    assert decode_step(stored[f"{job_id}/ship"]) == "shipped o-1"
    assert f"{job_id}/sleep-1" in stored


def test_a_retry_does_not_run_again_the_step_its_failed_run_completed(app: App) -> None:
    ran: Counter[str] = Counter()

    def reserve(sku: str) -> str:
        ran["reserve"] += 1
        return f"reserved {sku}"

    @app.job(durable=True, retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0))
    def restock(ctx: Durable, sku: str) -> str:
        reserved: str = ctx.step_sync("reserve", reserve, sku)
        if current_job().attempt == 1:
            raise RuntimeError("the run is interrupted once its first step is stored")
        return reserved

    with worker_in_thread(app) as worker:
        restock.enqueue("SKU-1")
        wait_until(lambda: worker.stats.done == 1, 90, 0.2)
        stats = worker.stats
    assert ran == {"reserve": 1}
    assert (stats.retried, stats.done, stats.dead) == (1, 1, 0)
