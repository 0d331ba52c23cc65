"""The job running now, as its own code sees it: `current_job()` gives its envelope's fields and
`progress(done, total, message)`.

Reporting progress writes one attribute of the job's Run (_running.py) — no lock, no I/O — so a
job may report in a tight loop. The worker's heartbeats (_presence.py) carry the latest value of
each running job, and of the jobs that ended lately having reported one; `pulsarjobs jobs show`,
the dashboard and the worker's metrics read it there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulsarjobs.wire.envelope import Envelope

if TYPE_CHECKING:
    from pulsarjobs.operations.inspector import WorkerStatus
    from pulsarjobs.wire.heartbeat import RunningJob
    from pulsarjobs.worker._running import Run


class CurrentJob:
    """The job running in this task or thread: `current_job().attempt`, `.id`, ... read its
    envelope (also whole, as `.envelope`); `.progress(...)` says how far it got."""

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def envelope(self) -> Envelope:
        return self._run.envelope

    @property
    def stopping(self) -> bool:
        """Whether its worker is asked to stop (SIGTERM, `workers stop`; not `quiet`): a long
        job may store where it is and end, to go on elsewhere (a durable job's iterate does)."""
        return self._run.stopping.is_set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run.envelope, name)

    def __repr__(self) -> str:
        return f"<CurrentJob {self._run.envelope!r}>"

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """How far the job got: `done` of `total` (None: unknown), and what it is doing. The
        last value is shown until the job ends, and for a while after."""
        if type(done) not in _NUMBERS or (total is not None and type(total) not in _NUMBERS):
            raise TypeError(f"progress takes numbers, got done={done!r}, total={total!r}")
        self._run.progress = (done, total, message if type(message) is str else str(message))


_NUMBERS = frozenset({int, float})  # one set lookup per check: progress may be called in a loop


def last_progress(
    workers: list[WorkerStatus], job_id: str
) -> tuple[WorkerStatus, RunningJob] | None:
    """Where a job runs now, or ran lately having reported a progress, by the workers'
    heartbeats: its worker and what it says of the job (running first, then the latest ended)."""
    for worker in workers:
        for job in worker.running:
            if job.job_id == job_id:
                return worker, job
    ended = [(job.ended_at, worker, job) for worker in workers for job in worker.ended
             if job.job_id == job_id]  # fmt: skip
    if not ended:
        return None
    _, worker, job = max(ended, key=lambda found: found[0] or found[2].started_at)
    return worker, job
