"""Finding a job by its id in a real Chromium, on the real broker: the top bar's search box and a
job id in a URL open the job's page whatever its state, and the page says which state. Which job
is in which state is read by the test itself, from the lists the broker holds (the shop,
tests/browser/shop.py, has one of each: the action tests before these may have moved some)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.app import JobCall
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.dead_letters import DeadLetterFilter
from tests.browser.served import log_in
from tests.browser.shop import Shop
from tests.browser.shown import rows, text, without_local_paths

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]


@pytest.fixture(scope="module")
def one_of_each(shop: Shop) -> dict[str, str]:
    """A job id in each state, as the broker's lists hold them; a job that finished keeping
    its result is enqueued here and waited for, as its caller would."""
    finished = shop.app.enqueue(
        JobCall("resize_image", ("uploads/kept.jpg", 320), keep_result=timedelta(hours=1))
    )
    assert shop.app.result(finished, timeout=60) is None  # resize_image returns nothing
    with shop.inspector() as inspector:
        browser = Browser(inspector)
        waiting = {
            job.envelope.id for job in browser.waiting("emails", None, 100).items if job.envelope
        }
        scheduled = {
            job.envelope.id for job in browser.scheduled("emails", None, 100).items if job.envelope
        }
        retrying = {
            job.envelope.id for job in browser.retries("billing", None, 100).items if job.envelope
        }
        dead = {
            letter.job_id for letter in browser.dead("billing", DeadLetterFilter(), None, 100).items
        }
        running = {job.job_id for worker in inspector.workers() for job in worker.running}
    return {
        "waiting": next(job for job in shop.waiting if job in waiting),
        "scheduled": next(job for job in shop.scheduled if job in scheduled),
        "retrying": next(job for job in shop.retrying if job in retrying),
        "dead": next(job for job in shop.dead if job in dead),
        "running": next(job for job in (shop.rendering,) if job in running),
        "finished": finished,
    }


def test_search_by_id_finds_a_job_in_each_state(
    page: Page, shop: Shop, one_of_each: dict[str, str], screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/queues")
    shown = {}
    for state, job_id in one_of_each.items():
        box = page.get_by_test_id("search-box")
        box.fill(job_id)
        box.press("Enter")
        page.wait_for_url(f"**/jobs/{job_id}")
        shown[state] = (text(page, "job-state-name"), text(page, "job-id"))
        if state == "retrying":
            without_local_paths(page.get_by_test_id("traceback"))
            screenshot(page, "job-found")
    assert shown == {state: (state, job_id) for state, job_id in one_of_each.items()}


def test_a_job_id_in_a_url_opens_its_page_whatever_its_state(
    page: Page, shop: Shop, one_of_each: dict[str, str], screenshot: Any
) -> None:
    log_in(page, shop.dashboard, "/")
    shown = {}
    for state, job_id in one_of_each.items():
        page.goto(shop.dashboard.at(f"/jobs/{job_id}"))
        shown[state] = text(page, "job-state-name")
        if state == "finished":
            assert text(page, "job-result") == "null"  # what it returned, kept
            screenshot(page, "job-finished")
    assert shown == {state: state for state in one_of_each}
    missing = page.goto(shop.dashboard.at("/jobs/0123456789abcdef0123456789abcdef"))
    assert missing is not None and missing.status == 404
    assert "No job 0123456789abcdef0123456789abcdef is stored" in page.content()


def test_search_by_type_or_arguments_lists_the_jobs_it_matches_and_what_it_read(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    with shop.inspector() as inspector:
        browser = Browser(inspector)
        scheduled = browser.scheduled("emails", None, 100).items
        due = browser.waiting("emails", None, 100).items
        held = browser.held("emails", "jobs")
    later2 = [job.position for job in scheduled if "later2@example.com" in job.envelope.args]
    receipts = [job.position for job in due if job.envelope.type == "send_receipt"]
    assert len(later2) == 1 and receipts

    log_in(page, shop.dashboard, "/scheduled?queue=emails")
    search(page, "LATER2@example")  # argument text, in any case
    assert page.get_by_test_id("search-said").is_visible()
    assert rows(page, "job-row", "data-position") == later2
    said = (text(page, "matched"), text(page, "scanned"), text(page, "held"))
    # read from the first job due later (the due ones before it skipped) to the end: all said
    assert (said[0], said[2]) == ("1", str(held)) and 0 < int(said[1]) <= held
    assert page.get_by_test_id("end").is_visible()
    screenshot(page, "search")

    page.goto(shop.dashboard.at("/queues/emails"))
    search(page, "SEND_rec")  # the start of a type, in any case
    assert rows(page, "job-row", "data-position") == receipts[:25]
    assert text(page, "scanned") == str(held) or page.get_by_test_id("next-page").is_visible()

    page.goto(shop.dashboard.at("/"))  # a page that lists no jobs: choose the list to search
    search(page, "later2@example")
    emails = page.locator('[data-testid="search-queue"][data-queue="emails"]')
    emails.get_by_test_id("search-scheduled").click()
    page.wait_for_url("**/scheduled?queue=emails&q=**")
    assert rows(page, "job-row", "data-position") == later2


def search(page: Page, words: str) -> None:
    """Type into the top bar's box and wait for the list it searched."""
    box = page.get_by_test_id("search-box")
    box.fill(words)
    box.press("Enter")
    page.wait_for_url("**q=**")
