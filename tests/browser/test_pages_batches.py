"""The Batches pages in a real headless Chromium, on the real broker: a batch of the shop and
its child batch, with their progress as the Inspector reads it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.workflows.batch_state import BatchProgress
from tests.browser.served import log_in
from tests.browser.shop import Shop
from tests.browser.shown import agrees, rows, text
from tests.integration.helpers import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

COLUMNS = ("batch-stage", "total", "pending", "succeeded", "dead", "fired")


def test_batches_show_each_batch_as_the_workers_counted_it(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    resize = shop.app.jobs["resize_image"]
    with shop.app.batch(description="thumbnails", on_complete=resize.call("all.png", 1)) as batch:
        batch.enqueue_many([resize.call(f"p{n}.png", 320) for n in range(3)])
        with batch.batch(description="banners") as child:
            child.enqueue_many([resize.call(f"b{n}.png", 1200) for n in range(2)])
    log_in(page, shop.dashboard, "/batches")

    def table() -> dict[str | None, dict[str, str]]:
        return {
            row.get_attribute("data-batch"): {column: text(row, column) for column in COLUMNS}
            for row in page.get_by_test_id("batch-row").all()
        }

    def held() -> dict[str | None, dict[str, str]]:
        with shop.inspector() as inspector:
            return {b.id: columns(b) for b in inspector.batches()}

    def complete() -> dict[str | None, dict[str, str]]:
        shown = agrees(page, table, held)
        return {key: shown[key] for key in (batch.id, child.id) if key in shown}

    finished = {"batch-stage": "complete", "pending": "0", "dead": "0"}
    parent_row = {**finished, "total": "4", "succeeded": "4", "fired": "on_complete"}
    child_row = {**finished, "total": "2", "succeeded": "2", "fired": "-"}
    assert agrees(page, complete, lambda: {batch.id: parent_row, child.id: child_row})
    assert set(rows(page, "batch-row", "data-batch")) >= {batch.id, child.id}
    screenshot(page, "batches")

    page.locator(f'[data-testid="batch-row"][data-batch="{child.id}"] a').click()
    assert text(page, "counts") == "2 in all: 0 pending, 2 succeeded, 0 dead"
    page.get_by_test_id("parent").click()
    assert text(page, "batch-stage") == "complete"
    assert text(page, "fired") == "on_complete"
    assert shop.dashboard.api(f"/batches/{batch.id}")["batch"]["total"] == 4  # type: ignore[index]


def columns(batch: BatchProgress) -> dict[str, str]:
    """A batch's row as the page should show it."""
    counts = (batch.total, batch.pending, batch.succeeded, batch.dead)
    values = [batch.stage, *map(str, counts), ", ".join(batch.fired) or "-"]
    return dict(zip(COLUMNS, values, strict=True))


def test_a_dead_chain_links_page_names_its_batch_and_its_place_in_the_chain(
    page: Page, shop: Shop
) -> None:
    resize, reserve = shop.app.jobs["resize_image"], shop.app.jobs["reserve_stock"]
    with shop.app.batch(description="restock") as batch:
        chained = batch.chain(resize.call("shelf.png", 64), reserve.call("SKU-0000", 3))
    dead_id = chained.job_ids[1]
    with shop.inspector() as inspector:
        wait_until(lambda: bool(inspector.find_dead_letters(dead_id, "images")), 60)
        wait_until(lambda: getattr(inspector.batch(batch.id), "stage", "") == "complete", 60)
    log_in(page, shop.dashboard, "/dead?queue=images")
    page.locator(f'[data-testid="dead-row"][data-job-id="{dead_id}"]').get_by_test_id(
        "job-link"
    ).click()
    assert text(page, "job-id") == dead_id
    assert text(page, "job-chain") == f"link 2 of 2 of chain {chained.id}"
    assert text(page, "chain-previous") == chained.job_ids[0]  # the link that published it
    assert page.get_by_test_id("chain-next").count() == 0  # the last link
    assert text(page, "job-batch") == batch.id
    page.get_by_test_id("job-batch").locator("a").click()
    assert text(page, "counts") == "1 in all: 0 pending, 0 succeeded, 1 dead"
    assert text(page, "dead-jobs") == chained.id  # the chain is the member that died
    page.get_by_test_id("dead-jobs").get_by_test_id("member-link").click()
    assert text(page, "job-id") == dead_id  # the chain's id finds its latest link
    assert text(page, "job-state-name") == "dead"


def test_a_batchs_chain_links_to_its_latest_link_and_that_to_the_next(
    page: Page, shop: Shop
) -> None:
    receipt = shop.app.jobs["send_receipt"]  # emails: no worker takes it
    with shop.app.batch(description="receipts") as batch:
        chained = batch.chain(
            receipt.call("o-1", "a@shop.test"), receipt.call("o-2", "b@shop.test")
        )
    with shop.inspector() as inspector:
        wait_until(lambda: getattr(inspector.batch(batch.id), "pending_jobs", ()) != (), 60)
    log_in(page, shop.dashboard, f"/batches/{batch.id}")
    assert text(page, "pending-jobs") == chained.id  # the batch counts the chain under its id
    page.get_by_test_id("pending-jobs").get_by_test_id("member-link").click()
    assert text(page, "job-id") == chained.job_ids[0]  # its first link, waiting
    assert text(page, "job-state-name") == "waiting"
    assert text(page, "job-chain") == f"link 1 of 2 of chain {chained.id}"
    assert page.get_by_test_id("chain-previous").count() == 0
    assert text(page, "chain-next") == chained.job_ids[1]
    href = page.get_by_test_id("chain-next").get_attribute("href")
    assert href == f"/jobs/{chained.job_ids[1]}"


def test_a_batch_links_its_pending_members_to_their_job_pages(page: Page, shop: Shop) -> None:
    report = shop.app.jobs["build_report"]
    with shop.app.batch(description="month end") as batch:
        later = batch.enqueue_many([report.call(f"close-{n}", "2026-01-31") for n in range(2)],
                                   in_=timedelta(hours=1))  # fmt: skip
    with shop.inspector() as inspector:
        wait_until(lambda: getattr(inspector.batch(batch.id), "pending_jobs", ()) != (), 60)
    log_in(page, shop.dashboard, f"/batches/{batch.id}")
    assert text(page, "counts") == "2 in all: 2 pending, 0 succeeded, 0 dead"
    links = page.get_by_test_id("pending-jobs").get_by_test_id("member-link")
    assert sorted(links.all_inner_texts()) == sorted(later)
    links.first.click()
    assert text(page, "job-id") in later
    assert text(page, "job-state-name") == "scheduled"
