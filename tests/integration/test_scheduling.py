"""Scheduled jobs on Pulsar's delayed delivery: never early, through restarts, within TTL."""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulsarjobs import App, EnqueueError
from pulsarjobs.transport.admin import Admin
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import started, wait_until, worker_in_thread


def schedule_spread(app: App, count: int, first: float, last: float) -> None:
    """Enqueue `count` jobs due evenly between `first` and `last` seconds from now."""
    now = datetime.now(UTC)
    step = (last - first) / count
    calls = [(app.jobs["scheduled"].call(n), now + timedelta(seconds=first + n * step))
             for n in range(count)]  # fmt: skip

    async def send_all() -> None:
        await asyncio.gather(*(app.enqueue_async(call, at=due) for call, due in calls))

    asyncio.run(send_all())


def lateness(record: Path) -> list[float]:
    return sorted(run["t"] - run["run_at"] for run in started(record))


def test_two_thousand_scheduled_jobs_none_starts_early(app: App, record: Path) -> None:
    schedule_spread(app, 2_000, first=1.0, last=20.0)
    with worker_in_thread(app, concurrency=32):
        wait_until(lambda: len({run["id"] for run in started(record)}) == 2_000, 90, interval=0.5)
    late = lateness(record)
    p50, p99 = statistics.median(late), late[int(len(late) * 0.99) - 1]
    print(f"lateness over 2,000 jobs: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {late[-1] * 1000:.0f} ms, early {sum(1 for x in late if x < 0)}, "
          f"ran twice {len(late) - 2_000}")  # fmt: skip
    assert late[0] >= 0, f"{sum(1 for x in late if x < 0)} jobs started before their time"


def test_scheduled_jobs_pending_during_a_broker_restart_all_run_after_it_none_early(
    broker: BrokerUnderTest, app: App, record: Path
) -> None:
    schedule_spread(app, 200, first=2.0, last=12.0)
    with worker_in_thread(app, concurrency=16) as worker:
        assert worker.ready.wait(30)
        broker.restart()
        wait_until(lambda: len(started(record)) >= 200, 90, interval=0.5)
    runs = started(record)
    assert len({run["id"] for run in runs}) == 200
    assert min(lateness(record)) >= 0


def test_a_job_due_after_the_namespace_ttl_is_refused(app: App) -> None:
    with Admin(app.settings.admin_url) as admin:
        admin.set_message_ttl(app.settings.full_namespace, 600)
    job = app.jobs["scheduled"]
    assert app.enqueue(job.call(1), in_=timedelta(minutes=5))
    with pytest.raises(EnqueueError, match="deletes messages after 600 s"):
        app.enqueue(job.call(2), in_=timedelta(hours=1))
