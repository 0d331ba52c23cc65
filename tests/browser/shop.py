"""The shop the browser tests look at: a namespace of its own on the real broker with jobs in
every state, two worker processes, a scheduler and a dashboard process, as a user would run them.

- emails: waiting jobs (no worker takes the queue) and jobs scheduled in 20 to 60 minutes;
- billing: jobs retrying in an hour and dead letters; images: one video rendering for as long
  as the tests run (a busy slot) and images resized, a few a second for a while, with the
  dashboard watching, so that its charts show rates; both taken by the first worker;
- reports: taken by the second worker, for the tests that pause, cancel and quiet.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pulsarjobs.app import App, JobCall
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.inspector import Inspector, WorkerStatus
from pulsarjobs.settings import Settings
from tests.apps.shop import make_app
from tests.browser.served import Served, dashboard_process
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_pulsarjobs,
    start_worker_process,
    started,
    stop_process,
    wait_until,
)

APP = "tests.apps.shop:app"
FIRST_QUEUES = ("billing", "images")  # the first worker's
SECOND_QUEUES = ("reports",)  # the second worker's
RENDERING_SECONDS = 900.0  # the video that keeps a slot busy while the tests run
DEAD_SKUS = (("SKU-4411", "berlin"), ("SKU-0907", "lyon"), ("SKU-1523", "berlin"))
RETRYING = 2  # charge_card jobs, retrying in an hour
REGIONS = ("eu", "us")  # a report each
TRAFFIC_SECONDS = 15  # of images to resize, for the charts


@dataclass
class Shop:
    settings: Settings
    app: App  # the shop's jobs, in the test process: to enqueue, as the shop's code would
    record: Path  # a line per run (tests/apps/pipeline.py's record)
    fix: Path  # touched: sync_inventory stops failing
    env: dict[str, str]  # what a command needs to reach the namespace
    dashboard: Served
    logs: dict[str, Path]  # of the "first" and "second" workers
    first: str  # worker names
    second: str
    rendering: str  # the job id of the video being rendered
    waiting: list[str]  # job ids on emails
    scheduled: list[str]  # job ids on emails, due in 20 to 60 minutes
    retrying: list[str]  # job ids on billing's retry topic
    dead: list[str]  # job ids on billing's dead-letter topic

    def inspector(self) -> Inspector:
        return Inspector(self.settings)


@contextmanager
def open_shop(broker: BrokerUnderTest, folder: Path) -> Iterator[Shop]:
    settings = fresh_settings(broker)
    record, fix = folder / "record.jsonl", folder / "fixed"
    env = {
        **settings_env(settings, record),
        "PULSARJOBS_TEST_FIX": str(fix),
        "PULSARJOBS_HEARTBEAT_INTERVAL": "1",  # the pages see a change within a second
    }
    app = make_app(settings)
    with ExitStack() as stack:
        stack.callback(app.close)
        ids = enqueue_every_state(app)
        logs = {name: folder / f"{name}-worker.log" for name in ("first", "second")}
        for name, concurrency, queues in (("first", 4, FIRST_QUEUES), ("second", 2, SECOND_QUEUES)):
            args = worker_args(concurrency, queues)
            stopped_at_exit(stack, start_worker_process(env, logs[name], *args, app=APP))
        stopped_at_exit(stack, start_pulsarjobs(env, folder / "scheduler.log", "scheduler", APP))
        dashboard = stack.enter_context(dashboard_process(env, folder / "dashboard.log", APP))
        inspector = stack.enter_context(Inspector(settings))
        workers = settled(inspector, record, traffic(app, dashboard, inspector))
        shop = Shop(
            settings=settings,
            app=app,
            record=record,
            fix=fix,
            env=env,
            dashboard=dashboard,
            logs=logs,
            first=next(w.worker for w in workers if w.queues == FIRST_QUEUES),
            second=next(w.worker for w in workers if w.queues == SECOND_QUEUES),
            **ids,
        )
        stack.callback(app.cancel, shop.rendering)  # its worker then stops without waiting
        yield shop


def worker_args(concurrency: int, queues: tuple[str, ...]) -> tuple[str, ...]:
    return ("--queues", ",".join(queues), "--concurrency", str(concurrency))


def stopped_at_exit(stack: ExitStack, process: subprocess.Popen[bytes]) -> None:
    stack.callback(stop_process, process, 60)


def enqueue_every_state(app: App) -> dict[str, Any]:
    """The jobs, enqueued before the workers start, so that they find them at once."""
    calls = [
        JobCall("send_receipt", (f"order-{1000 + n}", f"customer{n}@example.com"))
        for n in range(12)
    ]
    waiting = app.enqueue_many(calls)
    scheduled = [
        app.enqueue(
            JobCall("send_receipt", (f"order-{2000 + n}", f"later{n}@example.com")),
            in_=timedelta(minutes=20 * n),
        )
        for n in (1, 2, 3)
    ]
    retrying = app.enqueue_many(
        [JobCall("charge_card", (f"order-{1042 + n}", 1999 + 1000 * n)) for n in range(RETRYING)]
    )
    dead = app.enqueue_many([JobCall("sync_inventory", args) for args in DEAD_SKUS])
    app.enqueue_many([JobCall("build_report", (f"sales-{r}", "2026-01-04")) for r in REGIONS])
    rendering = app.enqueue(JobCall("render_video", ("intro-2026", RENDERING_SECONDS)))
    return {
        "rendering": rendering,
        "waiting": waiting,
        "scheduled": scheduled,
        "retrying": retrying,
        "dead": dead,
    }


def traffic(app: App, dashboard: Served, inspector: Inspector) -> int:
    """Images to resize, a few every second for TRAFFIC_SECONDS, with the dashboard asked for
    its Home page meanwhile (it samples the broker only when asked): its charts then have
    rates to draw. Returns how many were enqueued."""
    wait_until(lambda: len(inspector.workers()) == 2, 60, interval=0.5)
    enqueued = 0
    for second in range(TRAFFIC_SECONDS):
        count = (3, 8, 5, 12, 2, 6)[second % 6]
        app.enqueue_many(
            [
                JobCall("resize_image", (f"uploads/{second}/photo-{n}.jpg", 640))
                for n in range(count)
            ]
        )
        enqueued += count
        dashboard.api("/home")
        time.sleep(1)
    return enqueued


def settled(inspector: Inspector, record: Path, resized: int) -> list[WorkerStatus]:
    """Wait until every job ran as far as it goes and both workers say so in their heartbeats
    (a periodic job may run too, when the tests run at its time: it is not waited for)."""
    browser = Browser(inspector)
    settling = len(DEAD_SKUS) + RETRYING + len(REGIONS) + resized  # 1 more runs: the video
    wait_until(lambda: inspector.dead_count("billing") == len(DEAD_SKUS), 120, interval=0.5)
    wait_until(lambda: browser.held("billing", "retry") == RETRYING, 120, interval=0.5)
    wait_until(lambda: len(started(record)) >= settling + 1, 120, interval=0.5)
    wait_until(lambda: settled_workers(inspector, settling), 60, interval=0.5)
    return inspector.workers()


def settled_workers(inspector: Inspector, processed: int) -> bool:
    workers = inspector.workers()
    return (
        len(workers) == 2
        and sum(worker.busy for worker in workers) == 1
        and sum(worker.processed for worker in workers) >= processed
    )
