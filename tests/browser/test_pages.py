"""The dashboard in a real headless Chromium, on the real broker: each page shows what the broker
holds, as the test reads it itself with the Inspector, and a picture of each is taken (the docs
show them). These tests only look; the shop they share (tests/browser/shop.py) is changed by
test_pages_actions.py, which runs after them."""

from __future__ import annotations

import math
import socket
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.inspector import Inspector, QueueStats
from pulsarjobs.operations.ready_work import ReadyWork
from pulsarjobs.scheduling.leader import scheduler_leader
from tests.apps.shop import FRAMES, RENDERED_FRAMES
from tests.browser.served import log_in
from tests.browser.shop import Shop
from tests.browser.shown import agrees, rows, text, without_local_paths

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]


def counted(inspector: Inspector) -> list[QueueStats]:
    """Every queue's stats, its backlog read through: each job counted once, exactly."""
    return ReadyWork(inspector, read_budget=math.inf).exact(inspector.queues())


def test_home_shows_the_counts_the_broker_holds(page: Page, shop: Shop, screenshot: Any) -> None:
    log_in(page, shop.dashboard, "/")

    def counters() -> dict[str, str]:
        keys = ("waiting", "scheduled", "retrying", "dead", "busy")
        return {key: text(page, f"counter-{key}-value") for key in keys}

    def held() -> dict[str, str]:
        with shop.inspector() as inspector:
            queues = counted(inspector)
            workers = inspector.workers()
        busy, slots = sum(w.busy for w in workers), sum(w.concurrency for w in workers)
        return {
            "waiting": str(sum(queue.waiting for queue in queues)),
            "scheduled": str(sum(queue.scheduled for queue in queues)),
            "retrying": str(sum(queue.retrying or 0 for queue in queues)),
            "dead": str(sum(queue.dead for queue in queues)),
            "busy": f"{busy} / {slots}",
        }

    shown = agrees(page, counters, held)
    built = (len(shop.waiting), len(shop.scheduled), len(shop.retrying))
    assert (int(shown["waiting"]), int(shown["scheduled"]), int(shown["retrying"])) == built
    assert (int(shown["dead"]), shown["busy"]) == (len(shop.dead), "1 / 6")
    series = shop.dashboard.api("/home")["series"]  # type: ignore[index]
    assert max(series["processed"]) > 0  # the images resized while the dashboard watched
    page.locator("#chart-rates canvas").first.wait_for()
    page.locator("#chart-sizes canvas").first.wait_for()
    screenshot(page, "home")


def test_queues_show_each_queue_as_the_broker_holds_it(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/queues")
    columns = ("waiting", "scheduled", "retrying", "in-flight", "dead", "workers", "queue-state")

    def table() -> dict[str | None, dict[str, str]]:
        return {
            row.get_attribute("data-queue"): {column: text(row, column) for column in columns}
            for row in page.get_by_test_id("queue-row").all()
        }

    def held() -> dict[str | None, dict[str, str]]:
        with shop.inspector() as inspector:
            found: dict[str | None, dict[str, str]] = {}
            for queue in counted(inspector):
                found[queue.queue] = {
                    "waiting": str(queue.waiting),
                    "scheduled": str(queue.scheduled),
                    "retrying": str(queue.retrying),
                    "in-flight": str(queue.in_flight),
                    "dead": str(queue.dead),
                    "workers": str(queue.consumers),
                    "queue-state": "paused" if queue.paused else "active",
                }
            return found

    shown = agrees(page, table, held)
    assert set(shown) == {"billing", "emails", "images", "reports"}
    assert (shown["emails"]["waiting"], shown["emails"]["workers"]) == ("12", "0")
    screenshot(page, "queues")

    page.get_by_test_id("queue-row").filter(has_text="emails").get_by_test_id("queue-link").click()
    page.wait_for_url("**/queues/emails")
    assert rows(page, "job-row", "data-job-id") == shop.waiting  # oldest first
    assert text(page, "matched") == shown["emails"]["waiting"]
    screenshot(page, "queue")


def test_scheduled_and_retries_list_the_jobs_due_later(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/scheduled?queue=emails")
    with shop.inspector() as inspector:
        scheduled = inspector.queue("emails").scheduled
        retrying = Browser(inspector).held("billing", "retry")
    assert rows(page, "job-row", "data-job-id") == shop.scheduled
    assert int(text(page, "matched")) == scheduled == len(shop.scheduled)
    for box in page.get_by_test_id("select-row").all()[:2]:  # as one picks jobs to act on
        box.check()
    screenshot(page, "scheduled")

    page.get_by_test_id("nav-retries").click()
    page.get_by_test_id("queue-tabs").get_by_text("billing").click()
    assert sorted(rows(page, "job-row", "data-job-id")) == sorted(shop.retrying)  # type: ignore[type-var]
    assert int(text(page, "matched")) == retrying == len(shop.retrying)
    errors = page.get_by_test_id("job-row").locator(".error-text").all_inner_texts()
    assert all("payment gateway timed out" in error for error in errors), errors
    screenshot(page, "retries")


def test_dead_letters_and_a_dead_jobs_page(page: Page, shop: Shop, screenshot: Any) -> None:
    log_in(page, shop.dashboard, "/dead?queue=billing")
    with shop.inspector() as inspector:
        dead = inspector.dead_count("billing")
    assert sorted(rows(page, "dead-row", "data-job-id")) == sorted(shop.dead)  # type: ignore[type-var]
    assert int(text(page, "matched")) == dead == len(shop.dead)
    screenshot(page, "dead")

    row = page.get_by_test_id("dead-row").first
    job_id = row.get_attribute("data-job-id")
    row.get_by_test_id("job-link").click()
    assert text(page, "job-id") == job_id
    assert text(page, "job-type") == "sync_inventory"
    assert "ValueError: unknown SKU" in text(page, "traceback")
    without_local_paths(page.get_by_test_id("traceback"))
    screenshot(page, "job")


def test_workers_lists_both_workers_as_their_heartbeats_say(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/workers")

    def table() -> dict[str | None, tuple[str, str, str]]:
        return {
            row.get_attribute("data-worker"): (
                text(row, "worker-state"),
                text(row, "busy"),
                text(row, "processed"),
            )
            for row in page.get_by_test_id("worker-row").all()
        }

    def held() -> dict[str | None, tuple[str, str, str]]:
        with shop.inspector() as inspector:
            return {
                w.worker: (w.state, f"{w.busy} / {w.concurrency}", str(w.processed))
                for w in inspector.workers()
            }

    shown = agrees(page, table, held)
    assert set(shown) == {shop.first, shop.second}
    host = page.get_by_test_id("host")  # both run here: one group, with its own buttons
    assert (host.count(), host.get_attribute("data-host")) == (1, socket.gethostname())
    assert host.get_by_test_id("stop-host").get_attribute("data-confirm") == (
        f"Stop the 2 workers on {socket.gethostname()}? Each finishes its running jobs first."
    )
    assert all(cell.inner_text().strip() for cell in page.get_by_test_id("uptime").all())
    running = page.get_by_test_id("running-job")
    assert [job.get_attribute("data-job-id") for job in running.all()] == [shop.rendering]
    screenshot(page, "workers")


def test_workers_and_the_job_page_show_a_running_jobs_progress(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    progress = f"{RENDERED_FRAMES} of {FRAMES} (25%): encoding frames"
    log_in(page, shop.dashboard, "/workers")
    running = page.locator(f'[data-testid="running-job"][data-job-id="{shop.rendering}"]')
    assert text(running, "progress-text") == progress
    bar = running.locator("progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == (
        str(RENDERED_FRAMES),
        str(FRAMES),
    )
    running.get_by_test_id("running-job-link").click()  # to the job's own page, by its id
    page.wait_for_url(f"**/jobs/{shop.rendering}")
    assert text(page, "job-id") == shop.rendering
    assert text(page, "job-progress") == progress
    assert text(page, "job-running").startswith(f"on {shop.first}")
    assert text(page, "job-snoozes") == "none"
    screenshot(page, "job-running")


def test_run_now_is_offered_only_for_jobs_due_later(page: Page, shop: Shop) -> None:
    log_in(page, shop.dashboard, "/scheduled?queue=emails")
    assert page.get_by_test_id("run-now").count() == len(shop.scheduled) > 0
    with shop.inspector() as inspector:
        held = Browser(inspector).waiting("images", None, 100).items
    [running] = [job for job in held if job.envelope and job.envelope.id == shop.rendering]
    page.goto(shop.dashboard.at(f"/jobs/images/jobs/{running.position}"))
    assert text(page, "job-running").startswith(f"on {shop.first}")
    assert page.get_by_test_id("cancel").count() == 1
    assert page.get_by_test_id("run-now").count() == 0, "Run now would run a running job again"


def test_a_queue_that_does_not_exist_is_said_so(page: Page, shop: Shop) -> None:
    log_in(page, shop.dashboard, "/queues")
    shown = page.goto(shop.dashboard.at("/queues/nope"))
    assert shown is not None and shown.status == 404
    assert text(page, "error").startswith("No queue 'nope'")
    log_in(page, shop.dashboard, "/queues")
    paused = page.evaluate(
        """async () => (await fetch("/queues/pause", {method: "POST",
                                                     body: new URLSearchParams({queue: "nope"})}))
                       .status"""
    )
    assert paused == 404
    with shop.inspector() as inspector:
        assert "nope" not in inspector.paused_queues()


def test_cron_lists_the_apps_schedules_and_the_leading_scheduler(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/cron")
    with shop.inspector() as inspector:
        leader = scheduler_leader(inspector.admin, shop.settings)
    assert leader is not None
    assert leader.address in text(page, "leader")
    assert sorted(rows(page, "schedule-row", "data-schedule")) == sorted(shop.app.schedules)  # type: ignore[type-var]
    screenshot(page, "cron")
