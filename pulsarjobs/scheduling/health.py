"""A scheduler's health, for Kubernetes' probes (`pulsarjobs scheduler --metrics-port`).

Live while its serving thread goes round: every second while it leads, at each wait for
leadership while it stands by (the client gives up such a wait after its operation timeout,
10 s); a broker away only makes it wait and retry, which is not wedged. Ready while it serves,
leading or standing by — both are what high availability needs — until a stop is asked.
"""

from __future__ import annotations

import time
from typing import Protocol

WEDGED_AFTER = 60.0  # seconds without going round after which a scheduler is not live


class Served(Protocol):
    """The scheduler, as its health reads it (from the metrics server's thread)."""

    moved: float

    @property
    def serving(self) -> bool: ...

    @property
    def is_leading(self) -> bool: ...


class SchedulerHealth:
    def __init__(
        self, scheduler: Served, wedged_after: float = WEDGED_AFTER, name: str = "scheduler"
    ) -> None:
        """`name`: what serves, in the probes' answers (the outbox relay leads and stands by
        the same way)."""
        self.scheduler = scheduler
        self.wedged_after = wedged_after
        self.name = name

    def live(self) -> tuple[bool, str]:
        still = time.monotonic() - self.scheduler.moved
        if still < self.wedged_after:
            return True, "live"
        return False, f"wedged: the {self.name} has not gone round for {still:.0f} s"

    def ready(self) -> tuple[bool, str]:
        if not self.scheduler.serving:
            return False, "not ready: stopping"
        return True, "ready: leading" if self.scheduler.is_leading else "ready: standing by"
