"""A durable job's page in a real headless Chromium, on the real broker: a shop order asleep until
its pickup, found on the Retries page, lists the steps it stored as the Inspector reads them.
It adds a job to the images queue's retry topic, so it runs after test_pages.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.app import JobCall
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.durable_steps import DurableStep
from tests.browser.served import log_in
from tests.browser.shop import Shop
from tests.browser.shown import text
from tests.integration.helpers import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]


def test_a_sleeping_durable_jobs_page_lists_the_steps_it_stored(
    page: Page, shop: Shop, screenshot: Any
) -> None:
    job_id = shop.app.enqueue(JobCall("ship_order", ("order-1042", 4999, ["SKU-4411", "SKU-0907"])))
    with shop.inspector() as inspector:
        browser = Browser(inspector)

        def parked() -> bool:
            held = browser.retries("images", None, 100).items
            return any(job.envelope and job.envelope.id == job_id for job in held)

        wait_until(parked, 60, interval=0.5)
        charge, pack, pickup = inspector.steps(job_id)
    log_in(page, shop.dashboard, "/retries?queue=images")  # a sleeping job waits there
    page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]').get_by_test_id(
        "job-link"
    ).click()
    assert text(page, "job-id") == job_id

    def row(step: DurableStep) -> dict[str, str]:
        shown = page.locator(f'[data-testid="step-row"][data-step="{step.name}"]')
        return {key: text(shown, f"step-{key}") for key in ("state", "took", "value")}

    assert page.get_by_test_id("step-row").evaluate_all(
        "rows => rows.map(row => row.dataset.step)"
    ) == ["charge", "pack", "until-pickup"]  # in the order they were stored
    charged = row(charge)
    assert charged["state"] == "done"
    assert json.loads(charged["value"]) == {"charge_id": "ch-order-1042", "cents": 4999}
    assert charged["took"].endswith(" ms") and int(charged["took"].split()[0]) >= 390
    assert json.loads(row(pack)["value"]) == ["SKU-4411@shelf-1", "SKU-0907@shelf-2"]
    asleep = row(pickup)
    assert (asleep["state"], asleep["took"]) == ("sleeping", "-")
    assert pickup.wakes_at is not None
    wakes = pickup.wakes_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert asleep["value"].startswith(f"until {wakes}")
    assert text(page, "steps-said").startswith(f"Asleep until {wakes}")
    screenshot(page, "job-steps")
