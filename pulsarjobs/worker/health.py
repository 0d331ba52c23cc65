"""A worker's health, for Kubernetes' probes, on its metrics port: `/livez` and `/readyz`.

`/livez` says whether the process is wedged: its event loop marks a tick every second, and the
process is live while the last tick is younger than `wedged_after` seconds. It asks nothing of
the broker: a broker fail-over must not make Kubernetes restart every worker. `/readyz` says
whether the worker takes jobs now: subscribed and fetching; unready while it starts, once it is
quiet, and from the moment a stop is asked (SIGTERM), before any job is handed back.

Both are answered from the metrics server's own thread, so a wedged loop cannot hold them up.
With `--processes N` the supervisor serves them for the group (GroupHealth): each process writes
its tick and its state to a file of its own beside the group's metrics, and the group is live
while every process is, ready while every one is, and the answer names the one that is not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

TICK_SECONDS = 1.0  # how often the event loop says it moves
WEDGED_AFTER = 60.0  # seconds without a tick after which the process is not live

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Watched(Protocol):
    """The worker, as its health reads it (from another thread)."""

    @property
    def state(self) -> str: ...


class Probes(Protocol):
    def live(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


class Health:
    """One worker process's health. In a group (`report`: a file), each tick also writes the
    time (monotonic, the same clock in every process of the host) and the state there."""

    def __init__(
        self, worker: Watched, wedged_after: float = WEDGED_AFTER, report: Path | None = None
    ) -> None:
        self.worker = worker
        self.wedged_after = wedged_after
        self.report = report
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
        if self.report is not None:
            written = self.report.with_suffix(".tmp")  # renamed whole: never read half-written
            written.write_text(json.dumps({"ticked": self._ticked, "state": self.worker.state}))
            written.replace(self.report)
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


class GroupHealth:
    """A group's health, as its supervisor answers it from its processes' reports."""

    def __init__(self, directory: Path, wedged_after: float = WEDGED_AFTER) -> None:
        self.directory = directory
        self.wedged_after = wedged_after
        self.processes: Callable[[], list[int | None]] = list  # pids; None: being restarted
        self.stopping = False  # the supervisor was asked to stop

    def live(self) -> tuple[bool, str]:
        now = time.monotonic()
        for pid in self.processes():
            reported = self._report(pid)
            if reported is not None and now - reported["ticked"] >= self.wedged_after:
                still = now - reported["ticked"]
                return False, f"wedged: process {pid}'s event loop has not moved for {still:.0f} s"
        return True, "live"

    def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "not ready: stopping"
        for pid in self.processes():
            if pid is None:
                return False, "not ready: a process is being restarted"
            reported = self._report(pid)
            if reported is None:
                return False, f"not ready: process {pid} is starting"
            if reported["state"] != "running":
                return False, f"not ready: process {pid} is {reported['state']}"
        return True, "ready: taking jobs"

    def _report(self, pid: int | None) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = json.loads(report_path(self.directory, pid).read_text())
        except (OSError, ValueError):
            return None  # not written yet: the process is starting
        return found


def report_path(directory: Path, pid: int | None) -> Path:
    return directory / f"health-{pid}.json"


def serving(probes: Probes, metrics: WsgiApp) -> WsgiApp:
    """`metrics`, with /livez and /readyz answered by `probes`."""
    answers = {"/livez": probes.live, "/readyz": probes.ready}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        probe = answers.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics(environ, start_response)
        ok, said = probe()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{said}\n".encode()]

    return app
