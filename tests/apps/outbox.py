"""The outbox tests' jobs; a writer of transactions (`python -m tests.apps.outbox write
DATABASE_URL COUNT FILE`); a service with the relay in its process that kills itself with
SIGKILL right after its last COMMIT (`python -m tests.apps.outbox service DATABASE_URL COUNT
FILE`); and a relay that dies between the broker's ack and marking rows
published (`python -m tests.apps.outbox DATABASE_URL`; with PULSARJOBS_TEST_DIE_AT=N it kills
itself with SIGKILL as it is about to mark its Nth batch): the window the broker's
de-duplication must close."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from pulsarjobs.app import App
from pulsarjobs.outbox import Outbox
from pulsarjobs.outbox.relay import Relay
from pulsarjobs.outbox.store import Row, Store
from pulsarjobs.settings import Settings
from pulsarjobs.transport.connection import Connection
from tests.apps.pipeline import record

DIE_VARIABLE = "PULSARJOBS_TEST_DIE_AT"


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job
    def receipt(order: int) -> None:
        record("start", order=order)

    @app.job(unique_for=timedelta(minutes=5))
    def once(key: str) -> None:
        record("start", key=key)

    return app


def relay_that_dies(url: str) -> None:
    die_at = int(os.environ.get(DIE_VARIABLE, "0"))
    mark_published = Store.mark_published
    marks = itertools.count(1)

    def die_or_mark(self: Store, rows: Sequence[Row], duplicates: dict[int, str]) -> None:
        if next(marks) == die_at:  # the broker has these rows: die before marking them
            os.kill(os.getpid(), signal.SIGKILL)
        mark_published(self, rows, duplicates)

    Store.mark_published = die_or_mark  # type: ignore[method-assign]
    Relay(sa.create_engine(url), Connection(Settings.from_env()), poll_interval=0.2,
          batch_size=20).serve()  # fmt: skip


def write_transactions(url: str, count: int, out: str) -> None:
    """`count` transactions of one job each, every third rolled back, a few ms apart; each
    job's id appended to `out` with its fate once its transaction ended."""
    engine = sa.create_engine(url)
    outbox = Outbox(make_app(Settings.from_env()))
    receipt = outbox.app.jobs["receipt"]
    with open(out, "a") as fates:
        for n in range(count):
            with Session(engine) as session:
                job_id = outbox.enqueue(session, receipt.call(n))
                rolled_back = n % 3 == 2
                session.rollback() if rolled_back else session.commit()
            fates.write(f"{'rolled back' if rolled_back else 'committed'} {job_id}\n")
            fates.flush()
            time.sleep(0.01)
    engine.dispose()


def service_killed_after_commit(url: str, count: int, out: str) -> None:
    """`count` transactions of one job each, 20 ms apart, while the relay of this process
    publishes them; right after the last COMMIT, SIGKILL. Each job's id is appended to `out`
    before its commit."""
    engine = sa.create_engine(url)
    outbox = Outbox(make_app(Settings.from_env()))
    receipt = outbox.app.jobs["receipt"]
    with outbox.relay(engine, poll_interval=0.2) as relay, open(out, "a") as ids:
        while not relay.is_leading:
            time.sleep(0.05)
        for n in range(count):
            with Session(engine) as session:
                ids.write(f"{outbox.enqueue(session, receipt.call(n))}\n")
                ids.flush()
                if n == count - 1:
                    event.listen(session, "after_commit", lambda _session: kill_myself())
                session.commit()
            time.sleep(0.02)  # the relay publishes some meanwhile
    raise AssertionError("alive after the last commit")


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write_transactions(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "service":
        service_killed_after_commit(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        relay_that_dies(sys.argv[1])
