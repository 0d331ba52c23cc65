"""A real `pulsarjobs dashboard` process, started as a user starts it, and how a browser logs in."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from pulsarjobs.broker.process import free_port
from pulsarjobs.dashboard.auth import TOKEN_VARIABLE
from tests.integration.helpers import start_pulsarjobs, stop_process, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

TOKEN = "browser-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Served:
    url: str  # ends with a slash: http://127.0.0.1:PORT/
    process: subprocess.Popen[bytes]
    log: Path

    def at(self, path: str) -> str:
        return self.url + path.lstrip("/")

    def api(self, path: str) -> object:
        """A page's JSON, as an API client reads it."""
        response = httpx.get(self.at("/api" + path), headers=BEARER, timeout=30)
        response.raise_for_status()
        return response.json()


@contextmanager
def dashboard_process(env: dict[str, str], log: Path, *args: str) -> Iterator[Served]:
    """`pulsarjobs dashboard ARGS --port P` with the token set, once it answers."""
    port = free_port()
    process = start_pulsarjobs(
        {**env, TOKEN_VARIABLE: TOKEN}, log, "dashboard", *args, "--port", str(port)
    )
    served = Served(f"http://127.0.0.1:{port}/", process, log)
    try:
        wait_until(lambda: answers(served), timeout=60, interval=0.2)
        yield served
    finally:
        stop_process(process, timeout=30)


def answers(served: Served) -> bool:
    if served.process.poll() is not None:
        raise AssertionError(f"the dashboard exited: {served.log.read_text()[-2000:]}")
    try:
        return httpx.get(served.at("/login"), timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def log_in(page: Page, served: Served, path: str = "/") -> None:
    """Open `path` through the URL `pulsarjobs dashboard` prints: `?token=` logs the browser in
    and leaves for the same page without it."""
    separator = "&" if "?" in path else "?"
    page.goto(served.at(path) + f"{separator}token={TOKEN}")
    assert "token=" not in page.url
