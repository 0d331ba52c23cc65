"""The Dead page's order in a real headless Chromium, on the real broker: the first page shows
the latest dead job first, the link switches to the oldest first, and the next page, the filters
and "Delete all matching" keep the order and act on the same dead letters. A namespace of its
own (the shop's counts stay as its tests expect)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.app import App
from tests.browser.served import Served, dashboard_process, log_in
from tests.browser.shown import agrees, rows, text
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, settings_env
from tests.integration.test_dashboard_dead_order import publish_dead

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

LETTERS = 60


@pytest.fixture(scope="module")
def dead(broker: BrokerUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """60 dead letters of `default` in a known order, and a dashboard on their namespace."""
    folder = tmp_path_factory.mktemp("dead-order")
    settings = fresh_settings(broker)
    app = App(settings)
    try:
        ids = publish_dead(app, range(LETTERS))
        env = settings_env(settings, folder / "record.jsonl")
        with dashboard_process(env, folder / "dashboard.log") as served:
            yield ids, served
    finally:
        app.close()


def shown(page: Page) -> list[str | None]:
    return rows(page, "dead-row", "data-job-id")


def test_the_dead_page_lists_the_latest_first_and_switches_to_the_oldest(
    page: Page, dead: tuple[list[str], Served], screenshot: Any
) -> None:
    ids, served = dead
    log_in(page, served, "/dead?queue=default")
    assert shown(page) == ids[:-26:-1]
    assert (text(page, "order-current"), text(page, "scanned")) == ("newest first", "25")
    screenshot(page, "dead-newest")

    page.get_by_test_id("order-oldest").click()
    assert "order=oldest" in page.url
    assert shown(page) == ids[:25]
    page.get_by_test_id("next-page").click()
    assert shown(page) == ids[25:50]

    page.get_by_test_id("filter-error").fill("TimeoutError")
    page.get_by_test_id("filter-apply").click()
    timeouts = [job_id for n, job_id in enumerate(ids) if n % 3 == 0]
    assert "order=oldest" in page.url and shown(page) == timeouts
    page.get_by_test_id("order-newest").click()
    assert shown(page) == timeouts[::-1]

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("delete-matching").click()
    page.wait_for_url("**/tasks/*")
    page.goto(served.at("/dead?queue=default&size=100"))
    kept = [job_id for job_id in ids if job_id not in timeouts]
    agrees(page, lambda: shown(page), lambda: kept[::-1])
    page.get_by_test_id("order-oldest").click()
    assert shown(page) == kept
