"""The dashboard's buttons in a real headless Chromium, as a user clicks them (saying OK to their
confirms), and what live worker processes then do. They change the shared shop
(tests/browser/shop.py), so they run after test_pages.py, in this order: replay on billing,
pause and cancel on reports, cancel of ticked rows and of all on reports, and last quieting the
second worker (the one that takes reports)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pulsarjobs.app import JobCall
from tests.browser.served import log_in
from tests.browser.shop import Shop
from tests.browser.shown import agrees, rows, text
from tests.integration.helpers import started, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Locator, Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

QUIET_SECONDS = 3.0  # how long jobs that must not run are watched not running
CANCEL_DUE = timedelta(seconds=10)  # time enough to open the Scheduled page and click Cancel


def say_ok_to_confirms(page: Page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def ran(record: Path, job_ids: list[str]) -> list[str]:
    """Those of `job_ids` that started, once per run."""
    return [run["id"] for run in started(record) if run["id"] in job_ids]


def reports(count: int, day: str) -> list[JobCall]:
    return [JobCall("build_report", (f"inventory-{n}", day)) for n in range(count)]


def queue_row(page: Page, queue: str) -> Locator:
    return page.locator(f'[data-testid="queue-row"][data-queue="{queue}"]')


def test_replay_on_the_dead_page_runs_the_job_again(page: Page, shop: Shop) -> None:
    shop.fix.touch()  # the bug is fixed: run again, the job succeeds
    log_in(page, shop.dashboard, "/dead?queue=billing")
    with shop.inspector() as inspector:
        dead_before = inspector.dead_count("billing")
    row = page.get_by_test_id("dead-row").first
    job_id = str(row.get_attribute("data-job-id"))
    row.get_by_test_id("replay-one").click()

    task = page.get_by_test_id("task")
    task.and_(page.locator('[data-state="done"]')).wait_for(timeout=60_000)
    assert text(page, "task-result").startswith("1 matched · 1 replayed")
    wait_until(lambda: len(ran(shop.record, [job_id])) == 2, 60)  # it died once, then ran again

    page.get_by_test_id("back-to-list").click()
    with shop.inspector() as inspector:
        shown = agrees(
            page, lambda: int(text(page, "held")), lambda: inspector.dead_count("billing")
        )
    assert shown == dead_before - 1
    assert job_id not in rows(page, "dead-row", "data-job-id")


def test_pause_keeps_a_live_worker_off_the_queue_and_resume_lets_it_run(
    page: Page, shop: Shop
) -> None:
    log_in(page, shop.dashboard, "/queues")
    say_ok_to_confirms(page)
    queue_row(page, "reports").get_by_test_id("pause").click()
    assert text(page, "notice").startswith("Queue reports is paused")
    assert text(queue_row(page, "reports"), "queue-state") == "paused"
    paused = "queue paused"  # the worker's log, when it follows the pause
    wait_until(lambda: paused in shop.logs["second"].read_text(), 30, interval=0.2)

    ids = shop.app.enqueue_many(reports(3, "2026-01-05"))
    time.sleep(QUIET_SECONDS)
    assert ran(shop.record, ids) == []
    row = queue_row(page, "reports")
    with shop.inspector() as inspector:
        waiting, in_flight = agrees(
            page,
            lambda: (int(text(row, "waiting")), int(text(row, "in-flight"))),
            lambda: (inspector.queue("reports").waiting, inspector.queue("reports").in_flight),
        )
    assert waiting + in_flight == 3  # stored: waiting, or held by the worker, not run

    page.goto(shop.dashboard.at("/queues/reports"))  # its own page pauses and resumes it too
    assert text(page, "queue-paused") == "paused"
    page.get_by_test_id("resume").click()
    assert text(page, "notice") == "Queue reports is resumed."
    assert page.url.endswith("/queues/reports")
    assert page.get_by_test_id("queue-paused").count() == 0
    wait_until(lambda: sorted(ran(shop.record, ids)) == sorted(ids), 60)
    page.goto(shop.dashboard.at("/queues"))
    assert text(queue_row(page, "reports"), "queue-state") == "active"


def test_cancel_on_the_scheduled_page_keeps_the_job_from_running(page: Page, shop: Shop) -> None:
    enqueued = time.monotonic()
    doomed = shop.app.enqueue(JobCall("build_report", ("sales-apac", "2026-01-05")), in_=CANCEL_DUE)
    kept = shop.app.enqueue(
        JobCall("build_report", ("sales-latam", "2026-01-05")),
        in_=CANCEL_DUE + timedelta(seconds=1),
    )
    log_in(page, shop.dashboard, "/scheduled?queue=reports")
    say_ok_to_confirms(page)
    row = page.locator(f'[data-testid="job-row"][data-job-id="{doomed}"]')
    row.get_by_test_id("cancel").click()
    assert text(page, "notice").startswith(f"Job {doomed} is cancelled")
    assert time.monotonic() - enqueued < CANCEL_DUE.total_seconds(), "cancelled too late to tell"
    assert text(row, "cancelled") == "cancelled"

    wait_until(lambda: ran(shop.record, [kept]) == [kept], 60)  # due after the cancelled one
    assert ran(shop.record, [doomed]) == []
    with shop.inspector() as inspector:  # acknowledged unrun, not left behind
        wait_until(lambda: inspector.queue("reports").scheduled == 0, 30, interval=0.5)
        assert inspector.queue("reports").waiting == 0


def test_cancel_of_two_ticked_on_the_scheduled_page_says_two_and_takes_them_away(
    page: Page, shop: Shop
) -> None:
    ids = shop.app.enqueue_many(reports(3, "2026-01-07"), in_=timedelta(hours=1))
    log_in(page, shop.dashboard, "/scheduled?queue=reports")
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    for job_id in ids[:2]:
        page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]').get_by_test_id(
            "select-row"
        ).check()
    page.get_by_test_id("cancel-selected").click()
    done = page.get_by_test_id("task").and_(page.locator('[data-state="done"]'))
    done.wait_for(timeout=60_000)
    assert asked == ["Cancel 2 scheduled jobs? They will not run."]
    assert text(page, "task-result").startswith("2 matched · 2 cancelled")
    page.get_by_test_id("back-to-list").click()
    assert rows(page, "job-row", "data-job-id") == ids[2:]

    page.get_by_test_id("cancel-matching").click()  # and the last one, with every one listed
    done.wait_for(timeout=60_000)
    assert asked[-1] == "Cancel 1 scheduled job matching queue=reports? They will not run."
    page.get_by_test_id("back-to-list").click()
    assert rows(page, "job-row", "data-job-id") == []
    with shop.inspector() as inspector:
        assert inspector.queue("reports").scheduled == 0


def test_quiet_on_the_workers_page_stops_the_worker_fetching(page: Page, shop: Shop) -> None:
    log_in(page, shop.dashboard, "/workers")
    say_ok_to_confirms(page)
    row = page.locator(f'[data-testid="worker-row"][data-worker="{shop.second}"]')
    row.get_by_test_id("quiet").click()
    assert text(page, "notice") == f"Worker {shop.second} is quiet."
    assert text(row, "worker-state") == "quiet"
    with shop.inspector() as inspector:
        states = {worker.worker: worker.state for worker in inspector.workers()}
        assert states == {shop.first: "running", shop.second: "quiet"}
        wait_until(lambda: inspector.queue("reports").consumers == 0, 30, interval=0.5)

        ids = shop.app.enqueue_many(reports(2, "2026-01-06"))
        time.sleep(QUIET_SECONDS)
        assert ran(shop.record, ids) == []
        page.get_by_test_id("nav-queues").click()
        row = queue_row(page, "reports")
        shown = agrees(
            page,
            lambda: (text(row, "waiting"), text(row, "workers")),
            lambda: (
                str(inspector.queue("reports").waiting),
                str(inspector.queue("reports").consumers),
            ),
        )
    assert shown == ("2", "0")
