"""The transactional outbox on a real broker and a real PostgreSQL (and SQLite): what a rolled
back transaction wrote is never published, what a committed one wrote is published once, in the
order the transactions committed, through relay kills and a leader's `kill -9`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from pulsarjobs.app import App
from pulsarjobs.broker.process import free_port
from pulsarjobs.outbox import Outbox, metadata
from pulsarjobs.outbox.store import Store
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, decode
from tests.apps.outbox import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_pulsarjobs,
    started,
    stop_process,
    wait_until,
    worker_in_thread,
)

pytestmark = pytest.mark.broker


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres")
    else:
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    yield from engine_of(url)


@pytest.fixture
def postgres_engine(postgres: str) -> Iterator[sa.Engine]:
    yield from engine_of(postgres)


def engine_of(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def published(settings: Settings, queue: str = "default") -> list[Envelope]:
    return [decode(m.data()) for m in read_topic(settings, topics_for(settings, queue).jobs)]


def pending(engine: sa.Engine, settings: Settings) -> int:
    return Store(engine, settings.full_namespace).lag().pending


def test_committed_jobs_are_published_once_rolled_back_ones_never(
    database: sa.Engine, app: App, record: Path
) -> None:
    outbox, receipt = Outbox(app), app.jobs["receipt"]
    with Session(database) as session:
        committed = outbox.enqueue_many(session, [receipt.call(n) for n in range(20)])
        session.commit()
    with Session(database) as session:
        outbox.enqueue_many(session, [receipt.call(n) for n in range(100, 110)])
        session.rollback()
    with Session(database) as session, session.begin():
        committed.append(outbox.enqueue(session, receipt.call(20)))
    with outbox.relay(database, poll_interval=0.2), worker_in_thread(app, "default"):
        wait_until(lambda: len(started(record)) >= len(committed), 60)
        wait_until(lambda: pending(database, app.settings) == 0, 10)
    assert Counter(envelope.id for envelope in published(app.settings)) == Counter(committed)
    assert sorted(run["id"] for run in started(record)) == sorted(committed)


def test_a_unique_job_whose_key_is_held_is_recorded_not_published(
    postgres_engine: sa.Engine, app: App
) -> None:
    database = postgres_engine
    outbox, once = Outbox(app), app.jobs["once"]
    with Session(database) as session, session.begin():
        first = outbox.enqueue(session, once.call("k"))
        second = outbox.enqueue(session, once.call("k"))
    with outbox.relay(database, poll_interval=0.2):
        wait_until(lambda: pending(database, app.settings) == 0, 30)
    assert [envelope.id for envelope in published(app.settings)] == [first]
    with Session(database) as session:
        assert (outbox.duplicate_of(session, first), outbox.duplicate_of(session, second)) == (
            None,
            first,
        )


def test_transactions_are_published_in_the_order_they_committed(
    postgres_engine: sa.Engine, app: App
) -> None:
    """Causally ordered transactions keep their order; of two concurrent ones, the first to
    commit is published first, whichever took its row id first."""
    outbox, receipt = Outbox(app), app.jobs["receipt"]
    with outbox.relay(postgres_engine, poll_interval=0.2):
        for n in range(10):
            with Session(postgres_engine) as session, session.begin():
                outbox.enqueue(session, receipt.call(n))
        with Session(postgres_engine) as late, Session(postgres_engine) as early:
            outbox.enqueue(late, receipt.call(11))  # the smaller row id, committed last
            outbox.enqueue(early, receipt.call(10))
            early.commit()
            wait_until(lambda: pending(postgres_engine, app.settings) == 0, 30)  # published
            late.commit()
        wait_until(lambda: pending(postgres_engine, app.settings) == 0, 30)
    assert [envelope.args[0] for envelope in published(app.settings)] == list(range(12))


def test_a_commit_wakes_the_relay_on_postgresql(postgres_engine: sa.Engine, app: App) -> None:
    """LISTEN/NOTIFY: published at once, though the relay would look only once a minute."""
    outbox, receipt = Outbox(app), app.jobs["receipt"]
    with outbox.relay(postgres_engine, poll_interval=60) as relay:
        wait_until(lambda: relay.is_leading, 30)
        time.sleep(0.5)  # past its first look: asleep until woken
        with Session(postgres_engine) as session, session.begin():
            outbox.enqueue(session, receipt.call(1))
        committed = time.monotonic()
        wait_until(lambda: pending(postgres_engine, app.settings) == 0, 10, interval=0.02)
        print(f"published {time.monotonic() - committed:.2f} s after the commit")
    assert len(published(app.settings)) == 1


def test_a_standby_relay_takes_over_a_kill_9ed_leader_within_seconds(
    postgres: str, postgres_engine: sa.Engine, app: App, tmp_path: Path
) -> None:
    outbox, receipt = Outbox(app), app.jobs["receipt"]
    env = settings_env(app.settings, tmp_path / "unused.jsonl")
    command = ("outbox", "relay", "--database", postgres, "--poll-interval", "0.2")
    leader = start_pulsarjobs(env, tmp_path / "leader.log", *command)
    standby = None
    try:
        with Session(postgres_engine) as session, session.begin():
            before = outbox.enqueue(session, receipt.call(1))
        wait_until(lambda: pending(postgres_engine, app.settings) == 0, 60)
        port = free_port()
        standby = start_pulsarjobs(env, tmp_path / "standby.log", *command,
                                   "--metrics-port", str(port))  # fmt: skip
        wait_until(lambda: "pulsarjobs_outbox_leading 0.0" in metrics(port), 30)
        leader.kill()
        leader.wait(10)
        killed = time.monotonic()
        with Session(postgres_engine) as session, session.begin():
            after = outbox.enqueue(session, receipt.call(2))
        wait_until(lambda: pending(postgres_engine, app.settings) == 0, 30)
        took_over = time.monotonic() - killed
        scraped = metrics(port)
    finally:
        for process in (leader, standby):
            if process is not None:
                stop_process(process)
    print(f"published {took_over:.2f} s after the leader's kill -9")
    assert took_over < 10
    assert [envelope.id for envelope in published(app.settings)] == [before, after]
    for line in ("leading 1.0", "published_total 1.0", "pending_rows 0.0"):
        assert f"pulsarjobs_outbox_{line}" in scraped


def metrics(port: int) -> str:
    """A relay's /metrics ("" while it does not answer)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return ""


def test_an_asyncio_session_writes_in_its_transaction(
    postgres: str, postgres_engine: sa.Engine, app: App
) -> None:
    outbox, receipt = Outbox(app), app.jobs["receipt"]

    async def enqueue() -> list[str]:
        engine = create_async_engine(postgres)
        try:
            async with AsyncSession(engine) as session:
                await outbox.enqueue_async(session, receipt.call(1))
                await session.rollback()
            async with AsyncSession(engine) as session, session.begin():
                return await outbox.enqueue_many_async(session, [receipt.call(2)])
        finally:
            await engine.dispose()

    written = asyncio.run(enqueue())
    rows = Store(postgres_engine, app.settings.full_namespace).unclaimed(10)
    assert [row.job_id for row in rows] == written


def test_queues_and_the_dashboard_show_a_running_relays_pending_jobs(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    """They have no database URL: the relay's heartbeats tell its lag, then that it stopped."""
    from typer.testing import CliRunner

    from pulsarjobs.cli.main import app as cli_app
    from tests.integration.test_dashboard import api, dashboard

    settings = fresh_settings(broker).with_changes(heartbeat_interval=0.5)
    app, engine = make_app(settings), sa.create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata.create_all(engine)
    outbox, receipt = Outbox(app), app.jobs["receipt"]
    env = {name: value for name, value in settings_env(settings, tmp_path / "r").items()
           if name.startswith("PULSARJOBS_")}  # fmt: skip

    def queues() -> str:
        done = CliRunner().invoke(cli_app, ["queues"], env={**env, "COLUMNS": "200"})
        assert done.exit_code == 0, done.output
        return done.output

    try:
        with outbox.relay(engine, poll_interval=60) as relay, dashboard(settings) as web:
            wait_until(lambda: relay.is_leading, 30)
            time.sleep(0.5)  # past its first look: on SQLite it looks again in a minute
            with Session(engine) as session, session.begin():
                outbox.enqueue_many(session, [receipt.call(n) for n in range(3)])
            wait_until(lambda: "Outbox: 3 jobs not yet published" in queues(), 10)
            assert "publishes" in queues()
            wait_until(lambda: (api(web, "/queues")["outbox"] or {}).get("pending") == 3, 10)
            assert api(web, "/home")["outbox"]["relays"] == 1
        assert "Outbox" not in queues()  # its last heartbeat said it stopped
    finally:
        engine.dispose()
        app.close()


def test_jobs_a_service_committed_right_before_its_kill_9_are_published_by_the_next_relay(
    postgres: str, postgres_engine: sa.Engine, app: App, tmp_path: Path
) -> None:
    """The relay in the service's process (`with outbox.relay(engine)`) dies with it, right
    after its last COMMIT: what it had not published, the next relay to start publishes."""
    ids, log = tmp_path / "ids.txt", tmp_path / "service.log"
    env = settings_env(app.settings, tmp_path / "unused.jsonl")
    service = [sys.executable, "-m", "tests.apps.outbox", "service", postgres, "30", str(ids)]
    with log.open("ab") as out:
        died = subprocess.run(service, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=120, check=False).returncode  # fmt: skip
    assert died == -signal.SIGKILL, log.read_text()[-3000:]
    committed = ids.read_text().split()
    assert len(committed) == 30
    left = pending(postgres_engine, app.settings)
    assert left > 0, "the service's relay had published everything: no kill right after COMMIT"
    relay = start_pulsarjobs(env, tmp_path / "relay.log", "outbox", "relay", "--database",
                             postgres, "--poll-interval", "0.2")  # fmt: skip
    try:
        wait_until(lambda: pending(postgres_engine, app.settings) == 0, 60)
    finally:
        stop_process(relay)
    print(f"{left} of 30 jobs were left unpublished by the kill")
    assert Counter(envelope.id for envelope in published(app.settings)) == Counter(committed)
