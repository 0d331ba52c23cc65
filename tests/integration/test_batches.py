"""Batches on the real broker: callbacks once all jobs settled, nested batches, jobs that add
to their own batch, and progress as the Inspector and the CLI show it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from pulsarjobs.inspect import Inspector
from tests.apps.batches import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, records, wait_until, worker_in_thread

TIMEOUT = 120


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def callbacks(record: Path) -> list[tuple[str, str]]:
    return sorted((r["batch"], r["kind"]) for r in records(record) if r["event"] == "callback")


def test_callbacks_run_once_when_every_job_succeeded(app: App, record: Path) -> None:
    work, callback = app.jobs["work"], app.jobs["callback"]
    on_success, on_complete = callback.call("b1", "success"), callback.call("b1", "complete")
    with app.batch(on_success=on_success, on_complete=on_complete, description="ten") as batch:
        for n in range(10):
            batch.enqueue(work, n)
    with worker_in_thread(app):
        wait_until(lambda: len(callbacks(record)) == 2, TIMEOUT)
        progress = Inspector(app.settings).batch(batch.id)
    assert callbacks(record) == [("b1", "complete"), ("b1", "success")]
    assert progress is not None
    assert (progress.stage, progress.total, progress.succeeded, progress.dead) == (
        "complete",
        10,
        10,
        0,
    )
    assert progress.description == "ten"
