"""Durable jobs on the real broker: a completed step is stored on the compacted steps topic and
not run again — after a sleep that parks the job, and after a run that failed past it; the
Inspector and `pulsarjobs jobs show` list a job's steps, asleep or done."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pulsarjobs import App, Durable, Inspector, current_job
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.topics import steps_topic
from pulsarjobs.workflows.durable_store import decode_step
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_cli import run
from tests.integration.test_dashboard import api, dashboard, finished, post

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
    with Inspector(app.settings) as inspector:
        steps = inspector.steps(job_id)
    assert [(step.name, step.state) for step in steps] == [
        ("charge", "done"),
        ("sleep-1", "over"),
        ("ship", "done"),
    ]
    assert [step.value for step in steps if step.kind == "step"] == ["charged o-1", "shipped o-1"]


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


def jobs_show(app: App, job_id: str, *args: str) -> str:
    """`pulsarjobs jobs show ID ARGS` as a user runs it: what it prints."""
    env = {**settings_env(app.settings, Path(os.devnull)), "COLUMNS": "160"}
    done = run("-m", "pulsarjobs", "jobs", "show", job_id, *args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_sleeping_jobs_steps_are_listed_though_no_worker_runs_it(app: App) -> None:
    def charge(order_id: str) -> dict[str, str]:
        time.sleep(0.3)  # the card network takes its time
        return {"order": order_id, "charge": "ch-1"}

    @app.job(durable=True)
    def place_order(ctx: Durable, order_id: str) -> None:
        ctx.step_sync("charge", charge, order_id)
        ctx.sleep_sync(timedelta(seconds=60))

    with worker_in_thread(app) as worker:
        job_id = place_order.enqueue("o-1")
        wait_until(lambda: worker.stats.parked == 1, 90, 0.2)
        asleep_at = time.time()
    with Inspector(app.settings) as inspector:
        charged, sleep = inspector.steps(job_id)
        assert inspector.steps("no-such-job") == []
    assert (charged.name, charged.state, charged.value) == (
        "charge",
        "done",
        {"order": "o-1", "charge": "ch-1"},
    )
    assert charged.seconds is not None and 0.3 <= charged.seconds < 5
    assert (sleep.name, sleep.kind, sleep.state) == ("sleep-1", "sleep", "sleeping")
    assert sleep.wakes_at is not None
    assert 55 < sleep.wakes_at.timestamp() - asleep_at <= 60

    shown = json.loads(jobs_show(app, job_id, "--json"))
    assert (shown["job_id"], shown["worker"]) == (job_id, None)  # no worker runs it now
    assert [(step["name"], step["state"]) for step in shown["steps"]] == [
        ("charge", "done"),
        ("sleep-1", "sleeping"),
    ]
    assert shown["steps"][0]["value"] == {"order": "o-1", "charge": "ch-1"}
    assert datetime.fromisoformat(shown["asleep_until"]) == sleep.wakes_at

    text = jobs_show(app, job_id)
    assert f"Job {job_id}: place_order on default" in text  # found on the retry topic
    assert "asleep until" in text
    [charge_row] = [line for line in text.splitlines() if " charge " in line]
    assert "done" in charge_row and '{"order": "o-1", "charge": "ch-1"}' in charge_row
    [sleep_row] = [line for line in text.splitlines() if " sleep-1 " in line]
    assert "sleeping" in sleep_row and "until" in sleep_row


def test_a_dead_durable_job_replayed_from_the_dead_page_resumes_at_the_step_it_failed(
    app: App,
) -> None:
    ran: Counter[str] = Counter()
    broken = [True]

    def charge(order_id: str) -> str:
        ran["charge"] += 1
        return f"charged {order_id}"

    def ship(order_id: str) -> str:
        ran["ship"] += 1
        if broken[0]:
            raise RuntimeError("the carrier is down")
        return f"shipped {order_id}"

    @app.job(durable=True, max_attempts=1)
    def fulfil(ctx: Durable, order_id: str) -> str:
        charged: str = ctx.step_sync("charge", charge, order_id)
        shipped: str = ctx.step_sync("ship", ship, order_id)
        return f"{charged}, {shipped}"

    with worker_in_thread(app) as worker, dashboard(app.settings) as client:
        job_id = fulfil.enqueue("o-9")
        wait_until(lambda: worker.stats.dead == 1, 60, 0.1)
        broken[0] = False  # the carrier is back: replay it from the dashboard's Dead page
        [letter] = api(client, "/dead?queue=default")["page"]["items"]
        assert letter["job_id"] == job_id
        replayed = post(client, "/dead/replay", {"queue": "default", "one": letter["message_id"]})
        assert finished(client, replayed["task"])["result"]["moved"] == 1
        wait_until(lambda: worker.stats.done == 1, 60, 0.1)
    assert ran == {"charge": 1, "ship": 2}  # charged once, in its first run only
