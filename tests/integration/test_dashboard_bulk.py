"""The Scheduled and Retries pages' buttons acting on many jobs, against a real broker: run now,
cancel and kill those ticked or every one listed, as background tasks, and what the broker holds
after; and the confirmations saying how many jobs they touch."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pulsarjobs.app import App, JobCall
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.bulk_jobs import KILL_REASON
from pulsarjobs.operations.inspector import Inspector
from tests.integration.helpers import started, wait_until, worker_in_thread
from tests.integration.test_dashboard import (
    BEARER,
    HOUR_BACKOFF,
    api,
    dashboard,
    finished,
    post,
)

if TYPE_CHECKING:
    from starlette.testclient import TestClient

pytestmark = pytest.mark.broker

SOON = timedelta(seconds=5)  # due soon enough to see that a cancelled job never runs


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with dashboard(app.settings) as found:
        yield found


def acted(client: TestClient, path: str, data: dict[str, Any]) -> dict[str, Any]:
    """The result of a bulk action's task, once done."""
    result: dict[str, Any] = finished(client, post(client, path, data)["task"])["result"]
    return result


def listed(client: TestClient, page: str) -> list[str]:
    return [job["envelope"]["id"] for job in api(client, f"{page}?queue=default")["page"]["items"]]


def positions(client: TestClient, page: str, job_ids: list[str]) -> list[str]:
    items = api(client, f"{page}?queue=default")["page"]["items"]
    return [job["position"] for job in items if job["envelope"]["id"] in job_ids]


def ran(record: Path) -> list[str]:
    return [run["id"] for run in started(record)]


def test_scheduled_jobs_run_now_killed_and_cancelled_in_bulk(
    app: App, client: TestClient, record: Path
) -> None:
    greet = app.jobs["greet"]
    run_now = app.enqueue_many([greet.call("run now")] * 2, in_=timedelta(hours=1))
    killed = app.enqueue_many([greet.call("killed")] * 2, in_=timedelta(hours=1))
    assert api(client, "/scheduled?queue=default")["everything"] == {"found": 4, "complete": True}
    page = html.unescape(client.get("/scheduled?queue=default", headers=BEARER).text)
    assert "Cancel 4 scheduled jobs matching queue=default? They will not run." in page
    assert 'data-confirm="Run {n} scheduled job{s} now?"' in page  # the browser counts the ticks

    selected = positions(client, "/scheduled", run_now)
    done = acted(
        client, "/scheduled/run-now", {"queue": "default", "scope": "selected", "ids": selected}
    )
    assert (done["matched"], done["moved"], done["skipped"]) == (2, 2, 0)
    selected = positions(client, "/scheduled", killed)
    done = acted(
        client, "/scheduled/kill", {"queue": "default", "scope": "selected", "ids": selected}
    )
    assert (done["matched"], done["moved"]) == (2, 2)
    assert listed(client, "/scheduled") == []  # acknowledged: gone, not only marked

    app.enqueue_many([greet.call("doomed")] * 2, in_=SOON)
    due = time.monotonic() + SOON.total_seconds()
    done = acted(client, "/scheduled/cancel", {"queue": "default", "scope": "matching"})
    assert time.monotonic() < due, "cancelled too late to tell"
    assert (done["matched"], done["moved"]) == (2, 2)
    assert listed(client, "/scheduled") == []

    letters = api(client, "/dead?queue=default")["page"]["items"]
    assert sorted(letter["job_id"] for letter in letters) == sorted(killed)
    assert {letter["reason"] for letter in letters} == {KILL_REASON}
    counted = api(client, "/dead?queue=default&error=killed")["everything"]
    assert counted == {"found": 2, "complete": True}
    page = html.unescape(client.get("/dead?queue=default&error=killed", headers=BEARER).text)
    assert "Replay 2 dead jobs matching queue=default error=killed?" in page
    replayed = post(client, "/dead/replay", {"queue": "default", "job_id": killed})
    assert finished(client, replayed["task"])["result"]["moved"] == 2

    with worker_in_thread(app):
        wait_until(lambda: sorted(ran(record)) == sorted(run_now + killed), 60)
        wait_until(lambda: time.monotonic() > due + 1, 30)
        with Inspector(app.settings) as inspector:
            wait_until(lambda: inspector.queue("default").waiting == 0, 30)
    assert sorted(ran(record)) == sorted(run_now + killed)  # each once; the doomed never


def test_retries_run_now_and_killed_in_bulk_and_refused_read_only(
    app: App, client: TestClient, record: Path
) -> None:
    failing = JobCall("always_fails", args=("for an hour",), retry=HOUR_BACKOFF)
    ids = app.enqueue_many([failing] * 3)
    with worker_in_thread(app), Inspector(app.settings) as inspector:
        wait_until(lambda: Browser(inspector).held("default", "retry") == 3, 60)
    assert api(client, "/retries?queue=default")["everything"] == {"found": 3, "complete": True}

    with dashboard(app.settings, read_only=True) as reader:
        page = reader.get("/retries?queue=default", headers=BEARER).text
        assert 'data-testid="job-row"' in page and 'data-testid="select-row"' not in page
        refused = reader.post(
            "/api/retries/kill", data={"queue": "default", "scope": "matching"}, headers=BEARER
        )
        assert refused.status_code == 403
    wrong = client.post("/api/retries/kill", data={"queue": "default"}, headers=BEARER)
    assert wrong.status_code == 400 and "scope" in wrong.json()["error"]

    first = positions(client, "/retries", ids[:1])
    done = acted(
        client, "/retries/run-now", {"queue": "default", "scope": "selected", "ids": first}
    )
    assert done["moved"] == 1
    done = acted(client, "/retries/kill", {"queue": "default", "scope": "matching"})
    assert (done["matched"], done["moved"]) == (2, 2)
    assert listed(client, "/retries") == []
    letters = api(client, "/dead?queue=default")["page"]["items"]
    assert sorted(letter["job_id"] for letter in letters) == sorted(ids[1:])
    assert {letter["reason"] for letter in letters} == {KILL_REASON}
    assert {letter["error"] for letter in letters} == {"ValueError: for an hour"}

    with worker_in_thread(app):  # the one run now fails again, back to its backoff
        wait_until(lambda: listed(client, "/retries") == ids[:1], 60)
    assert sorted(ran(record)) == sorted([*ids, ids[0]])
