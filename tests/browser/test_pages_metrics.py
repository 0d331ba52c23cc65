"""The Metrics page in a real headless Chromium, on the real broker: a worker process runs a
known mix of the shop's jobs (done, retried, dead) in a namespace of its own, and the page
shows each type's counts — and shows them again from a new dashboard process, which has only
the broker's metrics topic to read them from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.app import JobCall
from tests.apps.shop import make_app
from tests.browser.served import Served, dashboard_process, log_in
from tests.browser.shown import agrees, rows, text
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_worker_process,
    started,
    stop_process,
    wait_until,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

APP = "tests.apps.shop:app"
# job type: (runs, retried, dead) once the mix below ran
EXPECTED = {
    "build_report": ("2", "0", "0"),
    "charge_card": ("2", "2", "0"),  # fails; retries in an hour
    "resize_image": ("300", "0", "0"),
    "send_receipt": ("40", "0", "0"),
    "sync_inventory": ("3", "0", "3"),  # one attempt only: dead at once
}


def shown(page: Page) -> dict[str, tuple[str, ...]]:
    table = {}
    for row in page.get_by_test_id("type-row").all():
        cells = (text(row, f"type-{cell}") for cell in ("runs", "retried", "dead"))
        table[row.get_attribute("data-type") or ""] = tuple(cells)
    return table


def test_the_metrics_page_shows_each_types_runs_and_still_does_after_a_restart(
    page: Page, broker: BrokerUnderTest, tmp_path: Path, screenshot: Any
) -> None:
    settings = fresh_settings(broker)
    record = tmp_path / "record.jsonl"
    env = {**settings_env(settings, record), "PULSARJOBS_METRICS_INTERVAL": "1"}
    app = make_app(settings)
    try:
        app.enqueue_many([JobCall("resize_image", (f"uploads/{n}.jpg", 640)) for n in range(300)])
        app.enqueue_many(
            [JobCall("send_receipt", (f"order-{n}", "a@example.com")) for n in range(40)]
        )
        app.enqueue_many([JobCall("charge_card", (f"order-{n}", 1999)) for n in range(2)])
        app.enqueue_many([JobCall("sync_inventory", (f"SKU-{n}", "berlin")) for n in range(3)])
        app.enqueue_many([JobCall("build_report", (f"sales-{r}", "2026-01-04")) for r in "ab"])
    finally:
        app.close()
    queues = ("--queues", "emails,images,billing,reports", "--concurrency", "4")
    worker = start_worker_process(env, tmp_path / "worker.log", *queues, app=APP)
    try:
        wait_until(lambda: len(started(record)) == 347, 120, interval=0.5)
        with dashboard_process(env, tmp_path / "dashboard.log", APP) as served:
            look(page, served)
            assert page.get_by_test_id("nav-metrics").get_attribute("aria-current") == "page"
            assert rows(page, "type-row", "data-type") == sorted(EXPECTED)
            charge_card = page.locator('[data-testid="type-row"][data-type="charge_card"]')
            assert text(charge_card, "type-failure-rate") == "100.0%"
            for chart in ("types", "queues", "sizes", "oldest"):  # drawn with the vendored uPlot
                assert page.locator(f'[data-testid="chart-{chart}"] canvas').count() == 1
            screenshot(page, "metrics")
    finally:
        stop_process(worker)
    with dashboard_process(env, tmp_path / "dashboard-again.log", APP) as restarted:
        look(page, restarted)
        page.get_by_test_id("range-7d").click()
        assert shown(page) == EXPECTED


def look(page: Page, served: Served) -> None:
    """Open the Metrics page, and read it until it shows every run of the mix."""
    log_in(page, served, "/job-metrics")
    agrees(page, lambda: shown(page), lambda: EXPECTED)
