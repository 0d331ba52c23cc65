"""The outbox without a broker, on SQLite: what `Outbox.enqueue` writes in the caller's
transaction, and the relay's claims on the table (the relay itself: tests/integration)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable
from typer.testing import CliRunner

from pulsarjobs import App, Settings
from pulsarjobs.cli import app as cli
from pulsarjobs.errors import PayloadTooLarge
from pulsarjobs.outbox import Outbox, metadata, outbox_table
from pulsarjobs.outbox.metrics import RelayCollector
from pulsarjobs.outbox.relay import Relay
from pulsarjobs.outbox.store import ClaimedElsewhere, Store
from pulsarjobs.transport.connection import Connection
from pulsarjobs.wire.envelope import ArgumentError, decode


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    created = sa.create_engine("sqlite://")  # in memory, one connection
    metadata.create_all(created)
    yield created
    created.dispose()


@pytest.fixture
def app() -> App:
    made = App(Settings(namespace="shop", max_message_size=10_000))

    @made.job(queue="mail")
    def send_receipt(order: int) -> None: ...

    @made.job(unique_for=timedelta(minutes=5))
    def refresh(key: str) -> None: ...

    return made


def rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(outbox_table).order_by(outbox_table.c.id)))


def test_enqueue_writes_the_encoded_envelope_in_the_callers_transaction(
    engine: sa.Engine, app: App
) -> None:
    outbox = Outbox(app)
    due = datetime(2030, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        job_id = outbox.enqueue(session, app.jobs["send_receipt"].call(7), at=due)
        session.rollback()
    assert rows(engine) == []
    with Session(engine) as session, session.begin():
        job_id = outbox.enqueue(session, app.jobs["send_receipt"].call(7), at=due)
        unique_id = outbox.enqueue(session, app.jobs["refresh"].call("k"))
    sent, unique = rows(engine)
    envelope = decode(sent.payload)
    assert (envelope.id, envelope.type, envelope.args, envelope.run_at) == (
        job_id, "send_receipt", (7,), due)  # fmt: skip
    assert sent.topic == "persistent://public/shop/mail"
    assert (sent.sequence_id, sent.published_at, sent.unique_key) == (None, None, None)
    assert sent.deliver_at.replace(tzinfo=UTC) == due
    assert (unique.job_id, unique.unique_for) == (unique_id, 300.0)
    assert unique.unique_key == decode(unique.payload).unique_key is not None


def test_rows_are_what_enqueue_inserts_for_another_database_layer_to_write(
    engine: sa.Engine, app: App
) -> None:
    """Django's ORM writes them (docs/frameworks.md): the relay reads them as its own."""
    built = Outbox(app).rows([app.jobs["send_receipt"].call(n) for n in range(2)])
    with engine.begin() as connection:
        connection.execute(sa.insert(outbox_table), built)
    store = Store(engine, app.settings.full_namespace)
    assert [row.job_id for row in store.unclaimed(10)] == [row["job_id"] for row in built]
    assert [decode(row.payload).args for row in store.unclaimed(10)] == [(0,), (1,)]


def test_a_job_that_cannot_be_encoded_fails_the_call_and_writes_nothing(
    engine: sa.Engine, app: App
) -> None:
    outbox, send_receipt = Outbox(app), app.jobs["send_receipt"]
    with Session(engine) as session, session.begin():
        with pytest.raises(ArgumentError):
            outbox.enqueue_many(session, [send_receipt.call(1), send_receipt.call("one")])
        with pytest.raises(PayloadTooLarge):
            outbox.enqueue(session, app.jobs["refresh"].call("x" * 20_000))
    assert rows(engine) == []


def test_rows_are_claimed_in_order_then_marked_published(engine: sa.Engine, app: App) -> None:
    outbox, store = Outbox(app), Store(engine, app.settings.full_namespace)
    with Session(engine) as session, session.begin():
        ids = outbox.enqueue_many(session, [app.jobs["send_receipt"].call(n) for n in range(5)])
    assert store.last_sequence_id() == -1
    claimed = store.claim(store.unclaimed(3), first=10)
    assert [(row.job_id, row.sequence_id) for row in claimed] == list(
        zip(ids[:3], [10, 11, 12], strict=True)
    )
    assert [row.job_id for row in store.unclaimed(10)] == ids[3:]
    assert [row.sequence_id for row in store.claimed()] == [10, 11, 12]
    assert store.last_sequence_id() == 12
    with pytest.raises(ClaimedElsewhere):  # rows a stale relay read before another claimed them
        store.claim(claimed[2:], first=20)
    store.mark_published(claimed[:2], {claimed[1].id: "holder"})
    assert [row.job_id for row in store.claimed()] == [ids[2]]
    lag = store.lag()
    assert lag.pending == 3 and lag.oldest is not None and lag.oldest.tzinfo is not None
    assert store.prune(timedelta(0)) == 2
    assert Store(engine, "public/other").lag().pending == 0  # another namespace's relay


def test_the_docs_give_the_tables_sql() -> None:
    """docs/outbox.md's SQL is what SQLAlchemy creates on PostgreSQL."""
    page = (Path(__file__).parents[2] / "docs" / "outbox.md").read_text()
    documented = page.split("```sql\n", 1)[1].split("```", 1)[0]
    dialect = postgresql.dialect()
    created = [str(CreateTable(outbox_table).compile(dialect=dialect))]
    created += [str(CreateIndex(index).compile(dialect=dialect)) for index in outbox_table.indexes]
    assert words(documented) == words(";".join(created) + ";")


def words(sql: str) -> list[str]:
    return re.sub(r"([(),;])", r" \1 ", sql).split()


def test_the_relays_metrics_tell_its_lag(engine: sa.Engine, app: App) -> None:
    with Session(engine) as session, session.begin():
        Outbox(app).enqueue(session, app.jobs["send_receipt"].call(1))
    relay = Relay(engine, Connection(app.settings))  # no broker is asked before it serves
    found = {
        sample.name: sample.value
        for metric in RelayCollector(relay).collect()
        for sample in metric.samples
    }
    assert found["pulsarjobs_outbox_pending_rows"] == 1
    assert 0 <= found["pulsarjobs_outbox_oldest_pending_seconds"] < 60
    assert (found["pulsarjobs_outbox_leading"], found["pulsarjobs_outbox_published_total"]) == (
        0,
        0,
    )


def test_outbox_status_tells_what_waits_to_be_published_in_its_namespace(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with Session(engine) as session:
        Outbox(app).enqueue_many(session, [app.jobs["send_receipt"].call(n) for n in range(3)])
        session.commit()
    engine.dispose()

    monkeypatch.setenv("PULSARJOBS_NAMESPACE", "shop")
    said = CliRunner().invoke(cli, ["outbox", "status", "--database", url, "--json"])
    assert said.exit_code == 0, said.output
    found = json.loads(said.output)
    assert (found["pending"], found["duplicates"]) == (3, 0)
    assert found["oldest_pending_seconds"] >= 0
    monkeypatch.setenv("PULSARJOBS_NAMESPACE", "elsewhere")  # another namespace's rows are not its
    said = CliRunner().invoke(cli, ["outbox", "status", "--database", url])
    assert said.output.startswith("0 jobs not yet published in public/elsewhere"), said.output
