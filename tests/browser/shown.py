"""Reading what a page shows, and waiting until it shows what the broker holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pulsarjobs

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

T = TypeVar("T")
AGREE_SECONDS = 30.0  # how long a page may take to show a change (it reads the broker every 3 s)


def agrees(page: Page, shown: Callable[[], T], held: Callable[[], T]) -> T:
    """What the page shows, once it shows what the broker holds: the page is read again (and
    the broker too) until both agree, or the test fails saying how they differ."""
    deadline = time.monotonic() + AGREE_SECONDS
    while True:
        expected = held()
        seen = shown()
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected
            return seen
        time.sleep(0.5)
        page.reload()


def without_local_paths(traceback: Locator) -> None:
    """The pictures go into the docs: the traceback names files from the project's folder, not
    from the folder of the machine that took them."""
    root = str(Path(pulsarjobs.__file__).resolve().parent.parent) + "/"
    traceback.evaluate(
        "(node, root) => { node.textContent = node.textContent.replaceAll(root, '') }", root
    )


def text(scope: Page | Locator, test_id: str) -> str:
    return scope.get_by_test_id(test_id).inner_text().strip()


def rows(page: Page, test_id: str, attribute: str) -> list[str | None]:
    return [row.get_attribute(attribute) for row in page.get_by_test_id(test_id).all()]
