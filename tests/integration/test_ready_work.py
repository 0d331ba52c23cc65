"""The ready work an autoscaler reads (/api/ready, the dashboard's `pulsarjobs_queue_ready`)
on a real broker with no worker connected: jobs due tomorrow are not ready work, however many,
though the subscription's backlog (what KEDA's Pulsar trigger reads) counts them."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsarjobs.app import App, JobCall
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import topics_for
from tests.integration.helpers import settings_env, started, wait_until, worker_in_thread

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

pytestmark = pytest.mark.broker

TOKEN = "test-dashboard-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TOMORROW, NOW = 60_000, 10_000  # more due tomorrow than the broker's delayed tracker reads ahead
CHUNK = 5_000
# Scheduled jobs deep enough that the broker's own count of delayed messages (what it read
# ahead: 50,016 of 200,000 in docs/benchmarks.md) cannot be it; 200,000 with --long.
SCHEDULED, SCHEDULED_LONG = 20_000, 200_000


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    web = create_app(app.settings, Secret(TOKEN), read_only=True)
    with TestClient(web, base_url="http://127.0.0.1:7420") as found:
        yield found


def ready(client: TestClient, queues: str = "default") -> dict[str, Any]:
    """The answer once the backlog is read through (a deep first read takes several looks)."""
    answers: list[dict[str, Any]] = []

    def through() -> bool:
        response = client.get(f"/api/ready?queues={queues}", headers=BEARER)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        return bool(answers[-1]["exact"])

    wait_until(through, 120, interval=0)
    return answers[-1]


def enqueue(app: App, count: int, **when: Any) -> list[str]:
    ids = []
    for start in range(0, count, CHUNK):
        calls = [JobCall("greet", args=(f"n{n}",)) for n in range(start, start + CHUNK)]
        ids += app.enqueue_many(calls[: count - start], **when)
    return ids


def test_ready_work_counts_the_jobs_due_now_not_the_60_000_due_tomorrow(
    app: App, client: TestClient, record: Path
) -> None:
    enqueue(app, TOMORROW, in_=timedelta(days=1))
    enqueue(app, NOW)
    with Admin.of(app.settings) as admin:
        stats = admin.summed_stats(topics_for(app.settings, "default").jobs)
    backlog = subscription_of(stats, app.settings.subscription)["msgBacklog"]
    assert backlog == TOMORROW + NOW  # what a backlog trigger would scale on

    found = ready(client)
    assert (found["ready"], found["queues"]["default"]["scheduled"]) == (NOW, TOMORROW)
    assert found["oldest_ready_seconds"] > 0

    # The due jobs run, though enqueued behind more jobs due tomorrow than the broker's
    # default lets a subscription track before it pauses (jobs-broker.conf turns that off).
    with worker_in_thread(app):
        wait_until(lambda: len(started(record, "greet")) == NOW, 120, interval=0.5)
    enqueue(app, 300)
    after = ready(client)
    assert (after["ready"], after["queues"]["default"]["scheduled"]) == (300, TOMORROW)


def test_a_paused_queue_is_listed_but_not_summed_and_bad_queue_names_are_refused(
    app: App, client: TestClient
) -> None:
    enqueue(app, 20)
    app.enqueue_many([JobCall("greet", args=("x",))] * 5, in_=timedelta(hours=1))
    assert ready(client, "default,critical")["ready"] == 20
    app.pause("default")
    found = ready(client, "default:3,critical:1")  # weights as --queues takes them
    assert found["ready"] == 0
    assert found["queues"]["default"] == {
        "ready": 20, "scheduled": 5, "retrying": 0, "cancelled": 0, "oldest_ready_seconds": found[
            "queues"]["default"]["oldest_ready_seconds"], "paused": True, "exact": True,
    }  # fmt: skip
    assert found["queues"]["critical"]["ready"] == 0  # no topic yet: no work

    scrape = client.get("/metrics", headers=BEARER).text
    samples = {
        (sample.name, sample.labels["queue"]): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "pulsarjobs_queue_ready"
    }
    assert samples[("pulsarjobs_queue_ready", "default")] == 20

    refused = client.get("/api/ready?queues=no/such", headers=BEARER)
    assert refused.status_code == 400 and "queue" in refused.text
    assert client.get("/api/ready").status_code == 401  # an autoscaler without the token


def test_every_count_is_exact_with_deep_scheduled_jobs_and_no_worker_connected(
    app: App, client: TestClient, record: Path, pytestconfig: pytest.Config
) -> None:
    """Each job counted once, in one state, wherever it is read: a cancelled job is no longer
    waiting or scheduled, and a retry waiting out its backoff is retrying, not scheduled."""
    scheduled = SCHEDULED_LONG if pytestconfig.getoption("--long") else SCHEDULED

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0.0))
    def fails_for_now() -> None:
        raise RuntimeError("the mail server is down")

    with worker_in_thread(app):
        fails_for_now.enqueue()
        fails_for_now.enqueue()
        wait_until(lambda: ready(client)["queues"]["default"]["retrying"] == 2, 60, interval=0.5)
    later = enqueue(app, scheduled, in_=timedelta(days=1))
    now = enqueue(app, 100)
    for job_id in (*later[:3], now[0]):
        app.cancel(job_id)

    expected = {"ready": 99, "scheduled": scheduled - 3, "retrying": 2, "cancelled": 4}
    found = ready(client)["queues"]["default"]
    assert {key: found[key] for key in expected} == expected

    env = settings_env(app.settings, record)
    done = subprocess.run([sys.executable, "-m", "pulsarjobs", "queues", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (listed,) = json.loads(done.stdout)
    shown = {key: listed[key] for key in ("waiting", "scheduled", "retrying", "cancelled", "exact")}
    assert shown == {"waiting": 99, "scheduled": scheduled - 3, "retrying": 2, "cancelled": 4,
                     "exact": True}  # fmt: skip

    scrape = client.get("/metrics", headers=BEARER).text
    gauges = {
        sample.name.removeprefix("pulsarjobs_queue_"): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.labels.get("queue") == "default"
    }
    assert {key: gauges[key] for key in ("waiting", "scheduled", "retrying", "cancelled")} == {
        "waiting": 99, "scheduled": scheduled - 3, "retrying": 2, "cancelled": 4,
    }  # fmt: skip
    page = client.get("/queues", headers=BEARER).text
    assert f'data-testid="scheduled"><a href="/scheduled?queue=default">{scheduled - 3:,}' in page
