"""What one open browser tab costs the dashboard process: its CPU seconds per minute, read from
/proc while a real headless Chromium (Debian's `chromium`, driven by Playwright as
tests/browser drives it) keeps a page open and polling."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def cpu_per_open_tab(pid: int, base: str, token: str, paths: dict[str, str],
                     seconds: float) -> dict[str, Any]:  # fmt: skip
    """For each page in `paths`: the dashboard's CPU seconds per minute while one tab shows it
    (after a settling tenth of `seconds`), and with no tab open for as long, the baseline."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("PULSARJOBS_CHROMIUM") or next(
        (found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None
    )
    if executable is None:
        raise SystemExit("no Chromium: install Debian's chromium (scripts/bootstrap does)")
    found: dict[str, Any] = {"idle": per_minute(pid, seconds)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            for name, path in paths.items():
                page = browser.new_page()
                page.goto(f"{base}{path}?token={token}")
                page.wait_for_timeout(seconds * 100)  # ms: a tenth of the window, to settle
                found[name] = {"path": path, **per_minute(pid, seconds, page)}
                page.close()
        finally:
            browser.close()
    return found


def per_minute(pid: int, seconds: float, page: Any = None) -> dict[str, float]:
    start, began = cpu_seconds(pid), time.monotonic()
    if page is not None:
        page.wait_for_timeout(seconds * 1000)  # the tab polls meanwhile
    else:
        time.sleep(seconds)
    used, took = cpu_seconds(pid) - start, time.monotonic() - began
    return {"cpu_s_per_min": round(used * 60 / took, 2), "window_s": round(took, 1)}
