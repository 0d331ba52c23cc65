"""The dashboard against a real broker: its pages and JSON tell what the Inspector tells, its pages
of jobs and dead letters page through everything once, and its buttons act as the CLI does."""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsarjobs.app import App, JobCall
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.operations.ready_work import ReadyWork
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, started, wait_until, worker_in_thread

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

TOKEN = "test-dashboard-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
HOUR_BACKOFF = RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0.0)


@contextmanager
def dashboard(settings: Settings, *, read_only: bool = False) -> Iterator[TestClient]:
    web = create_app(settings, Secret(TOKEN), read_only=read_only)
    with TestClient(web, base_url="http://127.0.0.1:7420") as client:
        yield client


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with dashboard(app.settings) as found:
        yield found


def api(client: TestClient, path: str) -> Any:
    response = client.get(f"/api{path}", headers=BEARER)
    assert response.status_code == 200, response.text
    return response.json()


def post(client: TestClient, path: str, data: dict[str, Any]) -> Any:
    response = client.post(f"/api{path}", data=data, headers=BEARER)
    assert response.status_code in (200, 202), response.text
    return response.json()


def finished(client: TestClient, task_id: str) -> dict[str, Any]:
    wait_until(lambda: api(client, f"/tasks/{task_id}")["task"]["state"] != "running", 60)
    task: dict[str, Any] = api(client, f"/tasks/{task_id}")["task"]
    assert task["state"] == "done", task
    return task


def dead_held(settings: Settings) -> int:
    with Inspector(settings) as inspector:
        return inspector.dead_count("default")


def scraped(client: TestClient, queue: str) -> dict[str, float]:
    """What a Prometheus scrape of /metrics says of a queue's waiting, scheduled and dead jobs."""
    text = client.get("/metrics", headers=BEARER).text
    wanted = {f"pulsarjobs_queue_{state}": state for state in ("waiting", "scheduled", "dead")}
    return {
        wanted[sample.name]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted and sample.labels.get("queue") == queue
    }


def kill(app: App, kinds: list[str]) -> list[str]:
    """`breaks` jobs that die at their first run, one per kind (value or key); their ids once
    all are dead letters."""
    ids = app.enqueue_many([JobCall("breaks", args=(n, kind)) for n, kind in enumerate(kinds)])
    with worker_in_thread(app, concurrency=10):
        wait_until(lambda: dead_held(app.settings) == len(kinds), 120)
    return ids


def test_pages_tell_what_the_inspector_tells_and_page_through_every_job_once(
    app: App, client: TestClient, record: Path
) -> None:
    settings = app.settings
    dead_ids = kill(app, ["value", "key", "value", "key", "key"])
    failing = app.enqueue(JobCall("always_fails", args=("for an hour",), retry=HOUR_BACKOFF))
    with worker_in_thread(app), Inspector(settings) as inspector:
        wait_until(lambda: Browser(inspector).held("default", "retry") == 1, 60)
    waiting = app.enqueue_many([JobCall("greet", args=(f"n{n}",)) for n in range(60)])
    later = app.enqueue_many([JobCall("greet", args=("later",))] * 2, in_=timedelta(hours=1))

    with Inspector(settings) as inspector:  # each job counted once: the retry is not scheduled
        expected = jsonable(ReadyWork(inspector, read_budget=math.inf).exact(inspector.queues()))
    (default,) = [
        queue for queue in api(client, "/queues")["queues"] if queue["queue"] == "default"
    ]
    (inspected,) = [queue for queue in expected if queue["queue"] == "default"]
    fields = ("waiting", "scheduled", "retrying", "cancelled", "in_flight", "dead", "exact",
              "paused", "consumers")  # fmt: skip
    assert {f: default[f] for f in fields} == {f: inspected[f] for f in fields}
    assert (default["waiting"], default["scheduled"], default["dead"]) == (60, 2, 5)
    totals = api(client, "/home")["totals"]
    assert (totals["waiting"], totals["scheduled"], totals["retrying"], totals["dead"]) == (
        60,
        2,
        1,
        5,
    )

    assert scraped(client, "default") == {"waiting": 60, "scheduled": 2, "dead": 5}
    assert client.get("/metrics").status_code == 401  # a scraper without the token

    seen: list[str] = []
    after = ""
    while True:
        page = api(client, f"/queues/default?size=25&after={after}")["page"]
        seen += [job["envelope"]["id"] for job in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert sorted(seen) == sorted(waiting)  # each once: 25 + 25 + 10, scheduled ones left out
    html = client.get("/queues/default?size=50", headers=BEARER).text
    assert html.count('data-testid="job-row"') == 50

    scheduled = api(client, "/scheduled?queue=default")["page"]
    assert [job["envelope"]["id"] for job in scheduled["items"]] == later
    # read from the first job due later (ReadyWork knows where): the 60 due before it unread
    assert (scheduled["matched"], scheduled["scanned"], scheduled["held"]) == (2, 2, 62)
    (retry,) = api(client, "/retries?queue=default")["page"]["items"]
    assert (retry["envelope"]["id"], retry["envelope"]["attempt"]) == (failing, 2)
    assert retry["envelope"]["last_error"]["message"] == "for an hour"

    key_errors = api(client, "/dead?queue=default&error=keyerror")["page"]
    assert sorted(letter["job_id"] for letter in key_errors["items"]) == sorted(
        [dead_ids[1], dead_ids[3], dead_ids[4]]
    )
    assert (key_errors["matched"], key_errors["scanned"], key_errors["held"]) == (3, 5, 5)
    html = client.get("/dead?queue=default&type=breaks&error=ValueError", headers=BEARER).text
    assert html.count('data-testid="dead-row"') == 2
    assert re.search(r'data-testid="scanned">5<', html)

    letter = key_errors["items"][0]
    job_page = client.get(f"/jobs/default/dead/{letter['message_id']}", headers=BEARER)
    assert "KeyError" in job_page.text and "Traceback" in job_page.text
    for path in ("/", "/queues", "/scheduled", "/retries", "/dead", "/workers", "/cron"):
        assert client.get(path, headers=BEARER).status_code == 200, path


def test_a_dead_jobs_page_shows_the_error_of_each_of_its_runs(
    app: App, client: TestClient, record: Path
) -> None:
    job_id = app.enqueue(JobCall("always_fails", args=("the mail server is down",)))
    with worker_in_thread(app):  # 3 attempts, the last one dead-lettered
        wait_until(lambda: len(api(client, "/dead?queue=default")["page"]["items"]) == 1, 60)
    (letter,) = api(client, "/dead?queue=default")["page"]["items"]
    assert letter["job_id"] == job_id
    page = client.get(f"/jobs/default/dead/{letter['message_id']}", headers=BEARER).text
    assert page.count('data-testid="earlier-error"') == 2  # the first two; the last has its own
    assert 'data-testid="traceback"' in page


def test_dead_letters_are_replayed_one_and_deleted_selected_from_the_dashboard(
    app: App, client: TestClient, record: Path, fix: Path
) -> None:
    ids = kill(app, ["value", "key", "value", "key"])
    letters = api(client, "/dead?queue=default")["page"]["items"]
    position = {letter["job_id"]: letter["message_id"] for letter in letters}

    replayed = post(client, "/dead/replay", {"queue": "default", "one": position[ids[0]]})
    task = finished(client, replayed["task"])
    assert (task["result"]["matched"], task["result"]["moved"]) == (1, 1)
    left = {letter["job_id"] for letter in api(client, "/dead?queue=default")["page"]["items"]}
    assert left == set(ids[1:])
    record.write_text("")
    fix.touch()
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 60)
    assert started(record)[0]["id"] == ids[0]

    client.get(f"/?token={TOKEN}")  # a browser: the cookie, and forms posted from its pages
    selected = [position[ids[1]], position[ids[3]]]
    response = client.post(
        "/dead/delete",
        data={"queue": "default", "scope": "selected", "ids": selected},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    task_id = response.headers["location"].rsplit("/", 1)[-1]
    assert finished(client, task_id)["result"]["moved"] == 2
    left = {letter["job_id"] for letter in api(client, "/dead?queue=default")["page"]["items"]}
    assert left == {ids[2]}
    page = client.get(f"/tasks/{task_id}")
    assert 'data-testid="task-result">2 matched · 2 deleted' in page.text


def test_quiet_from_the_dashboard_makes_a_worker_stop_fetching_and_stop_all_stops_its_host(
    broker: BrokerUnderTest, record: Path
) -> None:
    settings = fresh_settings(broker).with_changes(heartbeat_interval=1.0)
    app, other_app = make_app(settings), make_app(settings)  # as two processes on one host
    try:
        with (
            worker_in_thread(app) as worker,
            worker_in_thread(other_app) as other,
            dashboard(settings) as client,
        ):
            wait_until(lambda: len(api(client, "/workers")["workers"]) == 2, 60)
            told = post(client, "/workers/quiet", {"worker": worker.name})
            assert (told["confirmed"], told["state"]) == (True, "quiet")
            states = {w["worker"]: w["state"] for w in api(client, "/workers")["workers"]}
            assert states == {worker.name: "quiet", other.name: "running"}
            html = client.get("/workers", headers=BEARER).text
            assert 'data-testid="worker-state">quiet<' in html
            (host,) = {w["host"] for w in api(client, "/workers")["workers"]}
            assert html.count('data-testid="host"') == 1
            assert 'data-confirm="Stop the 2 workers on' in html

            told = post(client, "/workers/stop", {"host": host})
            assert set(told["workers"]) == {worker.name, other.name}
            assert set(told["workers"].values()) <= {"stopping", "stopped"}, told
            wait_until(lambda: api(client, "/workers")["workers"] == [], 30)
    finally:
        app.close()
        other_app.close()


def test_a_queue_is_paused_and_resumed_and_a_scheduled_job_run_now(
    app: App, client: TestClient, record: Path
) -> None:
    job_id = app.enqueue(JobCall("greet", args=("later",)), in_=timedelta(hours=1))
    post(client, "/queues/pause", {"queue": "default"})
    assert [q["paused"] for q in api(client, "/queues")["queues"]] == [True]
    post(client, "/queues/resume", {"queue": "default"})
    assert [q["paused"] for q in api(client, "/queues")["queues"]] == [False]

    cancelled_id = app.enqueue(JobCall("greet", args=("never",)), in_=timedelta(hours=1))
    app.cancel(cancelled_id)
    held = api(client, "/scheduled?queue=default")["page"]["items"]
    jobs = {job["envelope"]["id"]: job for job in held}
    run_now = {"queue": "default", "position": jobs[job_id]["position"]}
    ran = post(client, "/jobs/run-now", run_now)
    assert ran["job_id"] == job_id
    left = api(client, "/scheduled?queue=default")["page"]["items"]
    assert [job["envelope"]["id"] for job in left] == [cancelled_id]  # the original left
    again = client.post("/api/jobs/run-now", data=run_now, headers=BEARER)  # a double click
    assert again.status_code == 404, again.text
    revived = client.post("/api/jobs/run-now", headers=BEARER, data={
        "queue": "default", "position": jobs[cancelled_id]["position"]})  # fmt: skip
    assert revived.status_code == 404 and "cancelled" in revived.json()["error"], revived.text
    with worker_in_thread(app):
        wait_until(lambda: len(started(record)) == 1, 60)
        time.sleep(1)  # a second copy, had one been made, would have run by now
    assert [run["id"] for run in started(record)] == [job_id]


def test_a_read_only_dashboard_shows_no_button_and_refuses_every_change(
    app: App, record: Path
) -> None:
    kill(app, ["value"])
    with dashboard(app.settings, read_only=True) as client:
        html = client.get("/dead?queue=default", headers=BEARER).text
        assert 'data-testid="dead-row"' in html and "Replay" not in html
        refused = client.post("/api/dead/replay", data={"queue": "default"}, headers=BEARER)
        assert refused.status_code == 403
    assert dead_held(app.settings) == 1


def test_the_queues_page_tells_the_oldest_due_job_behind_a_thousand_scheduled(
    app: App, client: TestClient
) -> None:
    greet = app.jobs["greet"]
    app.enqueue_many([greet.call(f"later {n}") for n in range(1_100)], in_=timedelta(hours=1))
    app.enqueue(greet.call("due now"))
    with Inspector(app.settings) as inspector:
        told = inspector.queue("default").oldest_seconds  # the command line's answer
    assert told is not None
    [default] = [queue for queue in api(client, "/queues")["queues"] if queue["queue"] == "default"]
    assert default["oldest_seconds"] is not None
