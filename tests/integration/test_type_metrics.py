"""Metrics by job type on the real broker: a worker reports what it ran, and the dashboard's
/api/metrics reads the right counts back — again from a new dashboard, which reads the
metrics topic from its start."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsarjobs.app import App, JobCall
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.metrics_history import MetricsHistory
from pulsarjobs.scheduling.scheduler import Scheduler
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.metrics_reports import KEPT_MINUTES
from pulsarjobs.transport.topics import metrics_topic
from pulsarjobs.wire.type_metrics import Report, Row
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, started, wait_until, worker_in_thread
from tests.integration.test_dashboard import BEARER, dashboard

pytestmark = pytest.mark.broker

# job type: (runs, done, retried, dead) that the mix below ends with
EXPECTED = {
    "greet": (5, 5, 0, 0),
    "fails_twice": (3, 1, 2, 0),  # fails its first two attempts
    "breaks": (1, 0, 0, 1),  # one attempt only: dead at once
}


@pytest.fixture
def reporting_app(broker: BrokerUnderTest) -> Iterator[App]:
    """The test jobs' app, its workers reporting twice a second rather than each minute."""
    created = make_app(fresh_settings(broker).with_changes(metrics_interval=0.5))
    yield created
    created.close()


def counts(metrics: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        row["type"]: (row["runs"], row["done"], row["retried"], row["dead"])
        for row in metrics["types"]
    }


def sizes(metrics: dict[str, Any], queue: str) -> list[int]:
    """The sizes reported of a queue, minute by minute (minutes without a report left out)."""
    return [size for size in metrics["series"]["sizes"].get(queue, []) if size is not None]


def metrics_of(client: Any, range_: str = "1h") -> dict[str, Any]:
    response = client.get(f"/api/metrics?range={range_}", headers=BEARER)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_workers_runs_read_back_by_type_from_any_dashboard(
    reporting_app: App, record: Path
) -> None:
    app = reporting_app
    app.enqueue_many([JobCall("greet", (f"user{n}",)) for n in range(5)])
    app.enqueue(JobCall("fails_twice"))
    app.enqueue(JobCall("breaks", (1, "value")))
    with worker_in_thread(app), dashboard(app.settings) as client:
        with Inspector(app.settings) as inspector:
            wait_until(lambda: inspector.dead_count("default") == 1, 60)
        wait_until(lambda: len(started(record, "fails_twice")) == 3, 60)
        wait_until(lambda: counts(metrics_of(client)) == EXPECTED, 30, interval=0.5)
        shown = metrics_of(client)
        assert sizes(shown, "default")  # the worker wrote its queue's size
    rows = {row["type"]: row for row in shown["types"]}
    assert rows["fails_twice"]["failure_rate"] == pytest.approx(2 / 3)
    assert rows["breaks"]["failed"] == 1 and rows["greet"]["failed"] == 0
    assert rows["greet"]["run_p50"] is not None and rows["greet"]["wait_p95"] is not None
    assert sum(shown["series"]["types"]["greet"]) == 5
    assert sum(shown["series"]["queues"]["default"]) == 9

    with dashboard(app.settings) as restarted:  # a new dashboard: it reads the topic anew
        for range_ in ("1h", "24h", "7d"):
            assert counts(metrics_of(restarted, range_)) == EXPECTED
        refused = restarted.get("/api/metrics?range=2h", headers=BEARER)
        assert refused.status_code == 400
        assert refused.json() == {"error": "range must be one of 1h, 24h, 7d, got '2h'"}
    with Admin.of(app.settings) as admin:  # kept a week and more, though no one subscribes
        assert admin.topic_retention(metrics_topic(app.settings)) == KEPT_MINUTES


def test_a_dashboard_reads_each_report_once(reporting_app: App) -> None:
    app = reporting_app
    topic = metrics_topic(app.settings)
    minute = int(time.time() // 60)
    report = lambda n: Report("w1", minute, (Row("greet", "default", {"done": n}),))  # noqa: E731
    for n in (1, 2, 3):
        app.connection.publish(topic, report(n).encode()).result(30)
    with Inspector(app.settings) as inspector:
        history = MetricsHistory(lambda: inspector.connection)
        try:
            assert history.view("7d")["types"][0]["runs"] == 6
            assert history.read == 3
            app.connection.publish(topic, report(4).encode()).result(30)
            for range_ in ("1h", "24h", "7d"):
                assert history.view(range_)["types"][0]["runs"] == 10
            assert history.read == 4  # the new report only, whatever the range asked
        finally:
            history.close()


def test_the_leading_scheduler_writes_queue_sizes_while_no_worker_runs(
    reporting_app: App,
) -> None:
    app = reporting_app
    app.enqueue_many([JobCall("low_job", (n,)) for n in range(4)])  # no worker serves "low"
    scheduler = Scheduler(app, name="metrics-test")
    thread = threading.Thread(target=scheduler.serve, daemon=True)
    thread.start()
    try:
        with dashboard(app.settings) as client:
            wait_until(lambda: sizes(metrics_of(client), "low")[-1:] == [4], 30, interval=0.5)
    finally:
        scheduler.stop()
        thread.join(30)
    assert not thread.is_alive()


def test_a_stopping_worker_reports_what_it_counted_since_its_last_report(
    app: App, record: Path
) -> None:
    """Reporting each minute (the default), the worker stops before its next report is due,
    most likely: what it ran since goes out as it stops."""
    app.enqueue_many([JobCall("greet", (f"user{n}",)) for n in range(3)])
    with worker_in_thread(app):
        wait_until(lambda: len(started(record, "greet")) == 3, 60)
    with dashboard(app.settings) as client:
        assert counts(metrics_of(client)) == {"greet": (3, 3, 0, 0)}
