"""Where a worker runs each kind of job, and the hooks around runs and around the worker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from pulsarjobs import App, Envelope, Middleware
from pulsarjobs.worker.worker import Worker
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread


class Where(Middleware):
    """Records the thread of each hook, and what `around_process` saw."""

    def __init__(self) -> None:
        self.threads: dict[str, str] = {}
        self.around: list[tuple[str, str | None]] = []
        self.worker_events: list[str] = []

    def before_process(self, envelope: Envelope) -> None:
        self.threads[envelope.type] = threading.current_thread().name

    @contextlib.contextmanager
    def around_process(self, envelope: Envelope) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            self.around.append((envelope.type, type(exc).__name__))
            raise
        self.around.append((envelope.type, None))

    def on_worker_start(self, worker: Worker) -> None:
        self.worker_events.append(f"start {worker.state}")

    def on_worker_stop(self, worker: Worker) -> None:
        self.worker_events.append(f"stop {worker.state}")


def mixed_app(broker: BrokerUnderTest, where: Where) -> App:
    app = App(fresh_settings(broker), middleware=[where])

    @app.job
    def plain() -> None: ...

    @app.job
    async def coroutine() -> None:
        await asyncio.sleep(0)

    @app.job(max_attempts=1)
    def broken() -> None:
        raise KeyError("missing")

    return app


def test_a_mixed_app_runs_sync_jobs_on_runner_threads_and_async_jobs_on_the_loop(
    broker: BrokerUnderTest,
) -> None:
    where = Where()
    app = mixed_app(broker, where)
    for name in ("plain", "coroutine", "broken"):
        app.jobs[name].enqueue()
    with worker_in_thread(app, concurrency=2) as worker:
        wait_until(lambda: worker.stats.done == 2 and worker.stats.dead == 1, 30)
    app.close()
    assert where.threads["plain"].startswith("pulsarjobs-runner-")
    assert where.threads["broken"].startswith("pulsarjobs-runner-")
    # the event loop's thread: neither a runner thread nor a pool thread
    assert not where.threads["coroutine"].startswith("pulsarjobs-")
    assert sorted(where.around) == [("broken", "KeyError"), ("coroutine", None), ("plain", None)]
    assert where.worker_events == ["start running", "stop stopping"]
