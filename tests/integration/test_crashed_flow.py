"""Flow control keeps its promises for a job that was running when its worker process died.

Whether a re-delivered job takes the crash ledger's path depends, with real processes, on a race
(the supervisor counts the death while the broker delivers the job again). These tests record the
death in the ledger before the job is delivered, so that path is taken on every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.app import App
from pulsarjobs.worker.crashes import CrashGuard, CrashLedger
from tests.apps.flow import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, records, wait_until, worker_in_thread


@pytest.fixture
def flow_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


@pytest.fixture
def ledger() -> Iterator[CrashLedger]:
    made = CrashLedger()
    yield made
    made.close()


def died_running(ledger: CrashLedger, job_id: str) -> None:
    """The ledger counts one death of a process that was running `job_id`, as the supervisor
    does when a child dies."""
    child = CrashGuard(ledger.directory, 1)  # its slots file is named after this process
    child.started(job_id)
    assert ledger.process_died(os.getpid()) == [job_id]
    child.stop()


def test_a_unique_job_put_back_after_its_process_died_keeps_its_key(
    flow_app: App, ledger: CrashLedger, record: Path
) -> None:
    unique_job = flow_app.jobs["unique_job"]
    job_id = unique_job.enqueue(7)
    died_running(ledger, job_id)
    with worker_in_thread(flow_app, crash_ledger=ledger.directory) as worker:
        wait_until(lambda: worker.stats.deferred == 1, 30)
    # The worker stopped, so it gave back every key it was going to give back.
    assert unique_job.enqueue(7) == job_id, "the key went back while its job was still to run"
    with worker_in_thread(flow_app, crash_ledger=ledger.directory):
        wait_until(lambda: not flow_app.unique_keys.held(), 30)
    assert [r["id"] for r in records(record) if r["event"] == "start"] == [job_id]


def test_an_ordered_job_put_back_after_its_process_died_is_not_overtaken(
    flow_app: App, ledger: CrashLedger, record: Path
) -> None:
    step = flow_app.jobs["ordered_step"]
    ids = flow_app.enqueue_many([step.call(0, n).with_options(order_key="k") for n in range(5)])
    died_running(ledger, ids[0])
    ended = lambda: [r["n"] for r in records(record) if r["event"] == "end"]  # noqa: E731
    with worker_in_thread(flow_app, crash_ledger=ledger.directory) as worker:
        wait_until(lambda: len(ended()) == 5, 60)
        assert worker.stats.deferred == 1
    assert ended() == [0, 1, 2, 3, 4]
