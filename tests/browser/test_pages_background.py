"""A tab in the background asks the dashboard nothing: Home (its live part and its charts) and
Queues poll while shown, and stop while hidden. In a real headless Chromium, on the real broker,
with a dashboard of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.served import Served, dashboard_process, log_in
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, settings_env

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.broker, pytest.mark.browser]

POLLS_MS = 7_000  # two poll intervals and more, on the page's clock
SETTLED_MS = 1_000  # real time for a request the page's timers made to reach the network


@pytest.fixture(scope="module")
def served(broker: BrokerUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("background")
    env = settings_env(fresh_settings(broker), folder / "record.jsonl")
    with dashboard_process(env, folder / "dashboard.log") as started:
        yield started


@pytest.mark.parametrize("path", ["/", "/queues"])
def test_a_hidden_tab_stops_polling_and_a_shown_one_polls(
    page: Page, served: Served, path: str
) -> None:
    # The page's timers run on a clock the test moves: two poll intervals pass at once, and
    # what the page asks for in them is seen all the same (not 15 s of waiting per page).
    page.clock.install()
    log_in(page, served, path)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    with page.expect_request(lambda request: request.url.startswith(served.at(""))):
        page.clock.run_for(POLLS_MS)
    assert asked, "a tab shown asks for its live part every poll interval"
    page.evaluate("Object.defineProperty(document, 'hidden', {get: () => true})")
    page.clock.run_for(1_000)
    page.wait_for_timeout(SETTLED_MS)  # a request on its way when it was hidden
    asked.clear()
    page.clock.run_for(POLLS_MS)
    page.wait_for_timeout(SETTLED_MS)
    assert asked == []
