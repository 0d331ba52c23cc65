"""A running worker as what watches it sees it — its presence (heartbeats, commands) and its
metrics: a Protocol the Worker satisfies, so that they need not import the worker, which
starts them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView
    from pulsarjobs.settings import Settings
    from pulsarjobs.wire.heartbeat import RunningJob, WorkerState
    from pulsarjobs.worker._stats import WorkerStats
    from pulsarjobs.worker.feed import QueuePlan


class WorkerView(Protocol):
    @property
    def app(self) -> AppView: ...

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def plan(self) -> QueuePlan: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def stats(self) -> WorkerStats: ...

    @property
    def state(self) -> WorkerState: ...

    @property
    def busy(self) -> int: ...

    @property
    def held_by_limit(self) -> int: ...

    @property
    def running_jobs(self) -> tuple[RunningJob, ...]: ...

    @property
    def ended_jobs(self) -> tuple[RunningJob, ...]: ...

    def prefetched(self, queue: str) -> int: ...

    def quiet(self) -> None: ...

    def stop(self) -> None: ...
