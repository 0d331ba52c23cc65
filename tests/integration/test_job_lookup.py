"""`pulsarjobs jobs show ID` on the real broker finds a job by its id in every state (the job
index, pulsarjobs/transport/job_index.py): waiting (on its queue or a fair lane), scheduled,
retrying, dead, running, held on its queue's ordered topic, finished with a kept result; a
replayed dead job where it waits again; a job done without keeping its result is forgotten once
its entry is emptied; a job the outbox relay published; the dashboard reads the index whole once
as it starts, and a lookup after that (or asked while it reads) makes no second whole read; a
grouped job's member is found while it waits for its group."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pulsarjobs import App, Inspector
from pulsarjobs.dashboard.app import create_app
from pulsarjobs.dashboard.auth import Secret
from pulsarjobs.grouping.options import GroupOptions, Member
from pulsarjobs.jobs import JobCall
from pulsarjobs.operations.index_table import IndexTable
from pulsarjobs.operations.inspector import ALL
from pulsarjobs.operations.job_lookup import find_job
from pulsarjobs.operations.replay import replay
from pulsarjobs.outbox import Outbox, metadata
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.transport.backlog import position_of
from pulsarjobs.transport.job_index import EMPTY_AFTER_SECONDS, IndexEntry
from pulsarjobs.transport.topics import job_index_topic, topics_for
from pulsarjobs.wire.envelope import decode
from pulsarjobs.worker.progress import last_progress
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    reader_of,
    settings_env,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_cli import run

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

pytestmark = pytest.mark.broker
TOKEN = "test-dashboard-token"


def jobs_show(app: App, job_id: str) -> dict[str, Any] | None:
    """`pulsarjobs jobs show ID --json` as a user runs it; None when it finds no such job."""
    env = settings_env(app.settings, Path(os.devnull))
    done = run("-m", "pulsarjobs", "jobs", "show", job_id, "--json", env=env)
    if done.returncode != 0:
        assert f"No job {job_id} is stored" in done.stderr, done.stderr
        return None
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def state(app: App, job_id: str) -> str | None:
    """The job's state as `jobs show` finds it, read in this process (quicker to wait on)."""
    with Inspector(app.settings) as inspector:
        found = find_job(inspector, job_id, last_progress(inspector.workers(), job_id))
    return found.state if found else None


class Kept:
    """Lookups as the dashboard makes them: through the index it keeps (index_table.py)."""

    def __init__(self, app: App) -> None:
        self.inspector = Inspector(app.settings)
        self.index = IndexTable(lambda: self.inspector.connection)

    def state(self, job_id: str) -> str | None:
        seen = last_progress(self.inspector.workers(), job_id)
        found = find_job(self.inspector, job_id, seen, self.index)
        return found.state if found else None

    def close(self) -> None:
        self.index.close()
        self.inspector.close()


def shown_state(app: App, job_id: str) -> str | None:
    shown = jobs_show(app, job_id)
    return shown["state"] if shown else None


def test_jobs_show_finds_a_job_by_its_id_in_every_state(broker: BrokerUnderTest) -> None:
    app = App(dataclasses.replace(fresh_settings(broker), heartbeat_interval=0.5))
    release = threading.Event()

    @app.job(queue="work", max_attempts=1)
    def break_down() -> None:
        raise ValueError("broken")

    @app.job(queue="work", retry=RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0.0))
    def try_later() -> None:
        raise ConnectionError("later")

    @app.job(queue="work")
    def double(x: int) -> int:
        return x * 2

    @app.job(queue="work")
    def hold() -> None:
        release.wait(60)

    @app.job(queue="idle")
    def unserved() -> None: ...

    @app.job(queue="idle", fair_key="tenant-3")
    def unserved_fairly() -> None: ...

    try:
        waiting = unserved.enqueue()
        scheduled = app.enqueue(JobCall("unserved", ()), in_=timedelta(hours=1))
        in_order = app.enqueue(JobCall("unserved", (), order_key="customer-7"))
        fairly = unserved_fairly.enqueue()  # on one of the queue's fair lanes
        expired = app.enqueue(JobCall("double", (3,), expires_in=timedelta(milliseconds=1)))
        with worker_in_thread(app, "work") as worker:
            dead, retrying = break_down.enqueue(), try_later.enqueue()
            kept = app.enqueue(JobCall("double", (21,), keep_result=timedelta(minutes=10)))
            plain, running = double.enqueue(1), hold.enqueue()
            wait_until(lambda: worker.stats.dead == 1 and worker.stats.retried == 1, 60, 0.2)
            assert app.result(kept, timeout=60) == 42
            wait_until(lambda: state(app, running) == "running", 60, 0.5)
            assert shown_state(app, running) == "running"
            ids = (waiting, scheduled, in_order, fairly, dead, retrying)
            found = {job_id: shown_state(app, job_id) for job_id in ids}
            assert found == {
                waiting: "waiting",
                scheduled: "scheduled",
                in_order: "ordered",
                fairly: "waiting",
                dead: "dead",
                retrying: "retrying",
            }
            dashboard = Kept(app)
            assert {job_id: dashboard.state(job_id) for job_id in ids} == found
            shown = jobs_show(app, fairly)
            assert shown is not None and shown["where"].startswith("fair-"), shown
            shown = jobs_show(app, kept)
            assert shown is not None and shown["state"] == "finished"
            assert shown["result"]["value"] == 42
            release.set()
            # Done without keeping its result: its entry is emptied a little after it settled.
            wait_until(lambda: state(app, plain) is None, EMPTY_AFTER_SECONDS + 30, 0.5)
            assert dashboard.state(plain) is None  # the emptied entry, read as it came
            # Expired unrun, keeping no result: nothing of it is left to find either.
            assert worker.stats.expired == 1
            wait_until(lambda: state(app, expired) is None, EMPTY_AFTER_SECONDS + 30, 0.5)
        with Inspector(app.settings) as inspector:
            assert replay(inspector, "work", ALL).moved == 1
        wait_until(lambda: state(app, dead) == "waiting", 30, 0.5)  # back on its queue
        assert shown_state(app, dead) == "waiting"
        assert dashboard.state(dead) == "waiting"
        dashboard.close()
        assert shown_state(app, "0123456789abcdef0123456789abcdef") is None
    finally:
        app.close()


def test_a_job_the_outbox_relay_published_is_found_waiting(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    app = App(fresh_settings(broker))

    @app.job(queue="idle")
    def send_invoice(order_id: str) -> None: ...

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata.create_all(engine)
    outbox = Outbox(app)
    try:
        with Session(engine) as session, session.begin():
            job_id = outbox.enqueue(session, send_invoice.call("order-7"))
        with outbox.relay(engine, poll_interval=0.2):
            wait_until(lambda: state(app, job_id) == "waiting", 30, 0.5)
        assert shown_state(app, job_id) == "waiting"
    finally:
        engine.dispose()
        app.close()


def test_the_dashboard_reads_the_job_index_whole_as_it_starts_and_once(
    broker: BrokerUnderTest,
) -> None:
    app = App(fresh_settings(broker))

    @app.job(queue="idle")
    def unserved(n: int) -> None: ...

    ids = app.enqueue_many([unserved.call(n) for n in range(200)])
    app.close()  # the index's entries sent
    wait_until(lambda: state(app, ids[-1]) == "waiting", 30, 0.5)

    def lookup(client: TestClient, job_id: str) -> dict[str, Any]:
        response = client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()["located"]
        return found

    web = create_app(app.settings, Secret(TOKEN))
    index = web.state.dashboard.job_index
    with TestClient(web) as client:  # its lifespan: the dashboard starts
        wait_until(lambda: index.whole_reads == 1, 30, 0.1)  # read at start, no lookup asked
        found = lookup(client, ids[100])
        assert (found["state"], found["index_read"]) == ("waiting", 0)
    assert index.whole_reads == 1

    web = create_app(app.settings, Secret(TOKEN))
    index = web.state.dashboard.job_index
    with TestClient(web) as client:  # a lookup asked at once waits for the read under way
        assert [lookup(client, job_id)["state"] for job_id in ids[:3]] == ["waiting"] * 3
        assert index.whole_reads == 1
        assert lookup(client, ids[-1])["index_read"] == 0
    assert index.whole_reads == 1


def test_a_grouped_jobs_member_is_found_while_it_waits_for_its_group(
    broker: BrokerUnderTest,
) -> None:
    app = App(fresh_settings(broker))
    group = GroupOptions(max_size=10, grace=timedelta(seconds=1), max_delay=timedelta(seconds=4))

    @app.job(queue="gathered", group=group)
    def gather(members: list[Member]) -> None: ...

    try:
        member = gather.enqueue(7)
        wait_until(lambda: state(app, member) == "grouped", 30, 0.5)
        shown = jobs_show(app, member)
        assert shown is not None and (shown["state"], shown["where"]) == ("grouped", "groups")
        dashboard = Kept(app)
        assert dashboard.state(member) == "grouped"
        with worker_in_thread(app, "gathered"):  # its group is stored as a job of its own
            wait_until(lambda: state(app, member) is None, EMPTY_AFTER_SECONDS + 60, 0.5)
        assert dashboard.state(member) is None  # that job, under its own id, carries it
        dashboard.close()
    finally:
        app.close()


def test_jobs_enqueued_together_are_each_indexed_where_the_broker_stored_them(
    broker: BrokerUnderTest,
) -> None:
    """The broker's answers to jobs enqueued together are taken together (answers.py): each
    job's entry still names its own message, for jobs of two queues sent in one call."""
    settings = fresh_settings(broker)
    app = App(settings)

    @app.job(queue="idle")
    def unserved(n: int) -> None: ...

    @app.job(queue="other")
    def elsewhere(n: int) -> None: ...

    calls = [(unserved if n % 3 else elsewhere).call(n) for n in range(60)]
    ids = app.enqueue_many(calls)
    app.close()  # the index's entries sent
    stored = {
        decode(message.data()).id: position_of(message.message_id())
        for queue in ("idle", "other")
        for message in read_topic(settings, topics_for(settings, queue).jobs)
    }
    assert sorted(stored) == sorted(ids)
    indexed: dict[str, IndexEntry | None] = {}
    with reader_of(settings, job_index_topic(settings)) as reader:
        while reader.has_message_available():
            message = reader.read_next(timeout_millis=10_000)
            indexed[message.partition_key()] = IndexEntry.decode(message.data())
    assert {job_id: entry.position for job_id in ids if (entry := indexed[job_id])} == stored
