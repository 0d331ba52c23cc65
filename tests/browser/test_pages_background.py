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

POLLS_MS = 7_000  # two poll intervals and more


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
    log_in(page, served, path)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.wait_for_timeout(POLLS_MS)
    assert asked, "a tab shown asks for its live part every poll interval"
    page.evaluate("Object.defineProperty(document, 'hidden', {get: () => true})")
    page.wait_for_timeout(1_000)  # a request on its way when it was hidden
    asked.clear()
    page.wait_for_timeout(POLLS_MS)
    assert asked == []
