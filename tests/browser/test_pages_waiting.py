"""The Waiting page in a real headless Chromium, on the real broker: two shop orders waiting for
their payment are listed under their keys, and the page's Send signal resumes the one signalled,
in a live worker, with the payload typed. The orders wait on billing (its parked copies go to
billing's retry topic), so this runs after test_pages.py and test_pages_actions.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pulsarjobs.app import JobCall
from pulsarjobs.dashboard.pages import iso
from tests.browser.served import BEARER, log_in
from tests.browser.shop import Shop
from tests.browser.shown import agrees, rows, text
from tests.integration.helpers import records, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

PAID = {"charge_id": "ch-1077", "cents": 4999}


def payments(record: Path, job_id: str) -> list[Any]:
    """What the job got each time it resumed."""
    runs = records(record)
    return [run["payment"] for run in runs if run["event"] == "paid" and run["id"] == job_id]


def waiting_ids(shop: Shop) -> list[str]:
    with shop.inspector() as inspector:
        return sorted(wait.job_id for wait in inspector.waiting())


def test_the_waiting_page_lists_jobs_by_key_and_its_signal_resumes_one(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    paying, later = (
        shop.app.enqueue(JobCall("await_payment", (order,)))
        for order in ("order-1077", "order-1078")
    )
    wait_until(lambda: {paying, later} <= set(waiting_ids(shop)), 60, interval=0.5)
    with shop.inspector() as inspector:
        deadline = next(wait.deadline for wait in inspector.waiting() if wait.job_id == paying)

    log_in(page, shop.dashboard, "/")
    page.get_by_test_id("nav-waiting").click()
    assert page.get_by_test_id("nav-waiting").get_attribute("aria-current") == "page"
    group = page.locator('[data-testid="key-group"][data-key="paid:order-1077"]')
    row = group.locator(f'[data-testid="waiting-row"][data-job-id="{paying}"]')
    shown = {key: text(row, f"waiting-{key}") for key in ("type", "queue", "wait", "times-out")}
    assert shown == {
        "type": "await_payment",
        "queue": "billing",
        "wait": "payment",
        "times-out": f"{iso(deadline)} in 3d",
    }
    assert text(group, "group-count") == "1 waiting job"
    assert rows(page, "key-group", "data-key") == ["paid:order-1077", "paid:order-1078"]
    assert shop.dashboard.api("/waiting?key=paid:order-1077") == {
        "key": "paid:order-1077",
        "count": 1,
        "keys": [{"key": "paid:order-1077", "jobs": [{
            "key": "paid:order-1077", "job_id": paying, "type": "await_payment",
            "queue": "billing", "wait": "payment", "times_out_at": deadline.isoformat(),
        }]}],
    }  # fmt: skip

    group.get_by_test_id("signal-payload").fill(json.dumps(PAID))
    screenshot(page, "waiting")
    page.on("dialog", lambda dialog: dialog.accept())
    group.get_by_test_id("signal-send").click()
    assert text(page, "notice") == (
        "Signal 'paid:order-1077' sent: 1 waiting job resumed; kept for 24h for jobs that start "
        "waiting on it."
    )
    wait_until(lambda: payments(shop.record, paying) == [PAID], 60, interval=0.5)
    assert payments(shop.record, later) == []  # another key's job waits on
    listed = agrees(
        page,
        lambda: sorted(map(str, rows(page, "waiting-row", "data-job-id"))),
        lambda: waiting_ids(shop),
    )
    assert paying not in listed and later in listed


def test_a_signal_with_a_payload_that_is_not_json_is_refused_in_one_line(
    page: Page, shop: Shop
) -> None:
    before = waiting_ids(shop)
    response = httpx.post(
        shop.dashboard.at("/api/signals/send"),
        data={"key": "paid:order-1078", "payload": "{'cents': 4999}"},
        headers=BEARER,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("The payload is not JSON: Expecting property name enclosed in double")
    assert "\n" not in error

    log_in(page, shop.dashboard, "/waiting")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("signal-any-key").fill("paid:order-1078")
    page.get_by_test_id("signal-any-payload").fill("{'cents': 4999}")
    page.get_by_test_id("signal-any-send").click()
    assert text(page, "notice").startswith("No signal sent. The payload is not JSON: ")
    assert page.url == shop.dashboard.at("/waiting")
    assert waiting_ids(shop) == before  # nothing was sent: every job waits still

    page.goto(shop.dashboard.at("/waiting?key=paid:order-404"))
    assert text(page, "none-waiting") == "No job is waiting for a signal on paid:order-404."
