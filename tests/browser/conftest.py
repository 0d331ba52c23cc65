"""A real headless Chromium for the dashboard's end-to-end tests.

Debian's `chromium` (installed by scripts/bootstrap when it runs as root), driven by Playwright
with `executable_path`: Playwright's own browser downloads are never used. Without a browser the
tests fail under CI=true and skip elsewhere, saying why.

`pytest --screenshots DIR` saves a picture of each page the tests visit into DIR (docs/images
holds the ones docs/dashboard.md shows), at 1366 px wide and at 800 px; without it, pictures go
to the test's tmp_path (the 800 px one is only checked: nothing may run off the page).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.shop import Shop, open_shop
from tests.conftest import BrokerUnderTest, unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_NAMES = ("chromium", "chromium-browser")
PICTURE_MIN_HEIGHT = 360  # px; a picture is as tall as its page's content, at least this
WIDE, NARROW = 1366, 800  # px: a laptop's screen, and half a wide one


def chromium_path() -> str | None:
    if explicit := os.environ.get("PULSARJOBS_CHROMIUM"):
        return explicit
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it
    is open, and tests after these call asyncio.run()."""
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium: install Debian's chromium (scripts/bootstrap does, as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: run scripts/bootstrap")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDE, "height": 860})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """`screenshot(page, "home")`: a full-page picture, into --screenshots DIR when given."""
    chosen = request.config.getoption("--screenshots")
    folder = Path(chosen) if chosen else tmp_path

    def take(page: Page, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"dashboard-{name}.png"
        viewport = page.viewport_size
        assert viewport is not None
        # A short window: the picture ends where the page does, with no blank screen below.
        page.set_viewport_size({"width": viewport["width"], "height": PICTURE_MIN_HEIGHT})
        try:
            page.screenshot(path=str(path), full_page=True)
            page.set_viewport_size({"width": NARROW, "height": PICTURE_MIN_HEIGHT})
            overflow = page.evaluate(RUNS_OFF)
            assert overflow == [], f"{name} at {NARROW} px: these run off the page: {overflow}"
            if chosen:
                page.screenshot(path=str(folder / f"dashboard-{name}-{NARROW}.png"), full_page=True)
        finally:
            page.set_viewport_size(viewport)
        return path

    return take


# The elements whose right edge passes the window's (at most 5, named by tag, id and class),
# when the document is wider than the window: the page would scroll sideways.
RUNS_OFF = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 1)
    .slice(0, 5)
    .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
                (e.className && typeof e.className === "string" ? "." + e.className : ""));
}"""


@pytest.fixture(scope="package")  # its processes end with the browser tests, not the session
def shop(broker: BrokerUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A namespace with jobs in every state, two workers, a scheduler and a dashboard on it."""
    with open_shop(broker, tmp_path_factory.mktemp("shop")) as opened:
        yield opened
