"""What the worker and the features see of the App: a Protocol the App satisfies, so that they
take an App without importing it (the App is built on them).

Each member is one the App has; a module below the App that needs more of it (batches, the
scheduler) extends this Protocol where it is used, with that module's own types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulsarjobs.clock import Clock
    from pulsarjobs.jobs import Job, JobCall
    from pulsarjobs.middleware import Hooks
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.connection import Connection
    from pulsarjobs.transport.job_index import JobIndex
    from pulsarjobs.wire.envelope import Envelope


class UniqueKeyHolder(Protocol):
    """The unique keys of an App, as the worker gives them back (flow/unique.py)."""

    def release(self, key: str, job_id: str) -> None: ...


class DebounceWindows(Protocol):
    """The debounce windows of an App, as the worker asks them (flow/debounce.py)."""

    def superseded_by(self, envelope: Envelope) -> str | None: ...
    def settled(self, envelope: Envelope) -> None: ...


class SignalSender(Protocol):
    """The signals of an App, as the worker resumes a child job's parent (workflows/signals.py)."""

    def send(self, key: str, payload: Any = None, keep: timedelta = ...) -> int: ...


class AppView(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def jobs(self) -> dict[str, Job[Any, Any]]: ...

    @property
    def hooks(self) -> Hooks: ...

    @property
    def connection(self) -> Connection: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def job_index(self) -> JobIndex: ...

    @property
    def unique_keys(self) -> UniqueKeyHolder: ...

    @property
    def signals(self) -> SignalSender: ...

    @property
    def debounces(self) -> DebounceWindows: ...

    def envelope(
        self, call: JobCall, *, in_: timedelta | None = None, at: datetime | None = None
    ) -> Envelope: ...

    def publish_envelope(self, envelope: Envelope, topic: str | None = None) -> Future[None]: ...

    def queue_topic(self, envelope: Envelope) -> str: ...

    def check_reachable(self, topics: Iterable[str]) -> None: ...

    async def stored_async(
        self, send: Callable[[], Future[None]], topics: Iterable[str], scheduled: bool = False
    ) -> None: ...

    def declared_queues(self) -> tuple[str, ...]: ...

    def hold(self) -> None: ...

    def release(self) -> None: ...
    def fair_queues(self) -> set[str]: ...

    def close(self) -> None: ...
