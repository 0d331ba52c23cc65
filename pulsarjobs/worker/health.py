"""A worker's health, for Kubernetes' probes, on its metrics port: `/livez` and `/readyz`.

`/livez` says whether the process is wedged: its event loop marks a tick every second, and the
process is live while the last tick is younger than `wedged_after` seconds. It asks nothing of
the broker: a broker fail-over must not make Kubernetes restart every worker. `/readyz` says
whether the worker takes jobs now: subscribed and fetching; unready while it starts, once it is
quiet, and from the moment a stop is asked (SIGTERM), before any job is handed back.

Both are answered from the metrics server's own thread, so a wedged loop cannot hold them up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

TICK_SECONDS = 1.0  # how often the event loop says it moves
WEDGED_AFTER = 60.0  # seconds without a tick after which the process is not live

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Watched(Protocol):
    """The worker, as its health reads it (from another thread)."""

    @property
    def state(self) -> str: ...


class Health:
    def __init__(self, worker: Watched, wedged_after: float = WEDGED_AFTER) -> None:
        self.worker = worker
        self.wedged_after = wedged_after
        self._ticked = time.monotonic()
        self._tick: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin ticking on `loop` (call it from the loop)."""
        self._ticked = time.monotonic()
        self._tick = loop.call_later(TICK_SECONDS, self._on_tick, loop)

    def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    def _on_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ticked = time.monotonic()
        self._tick = loop.call_later(TICK_SECONDS, self._on_tick, loop)

    def live(self) -> tuple[bool, str]:
        still = time.monotonic() - self._ticked
        if still < self.wedged_after:
            return True, "live"
        return False, f"wedged: the event loop has not moved for {still:.0f} s"

    def ready(self) -> tuple[bool, str]:
        state = self.worker.state
        if state == "running":
            return True, "ready: taking jobs"
        return False, f"not ready: {state}"

    def serving(self, metrics: WsgiApp) -> WsgiApp:
        """`metrics`, with /livez and /readyz answered here."""
        probes = {"/livez": self.live, "/readyz": self.ready}

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            probe = probes.get(environ.get("PATH_INFO", ""))
            if probe is None:
                return metrics(environ, start_response)
            ok, said = probe()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{said}\n".encode()]

        return app
