"""`Outbox`: enqueue jobs in the caller's database transaction (docs/outbox.md).

`Outbox(app)` rather than a method of the App: the outbox needs SQLAlchemy, an optional extra,
which the App, imported by every worker and producer, does not.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pulsarjobs.app_view import AppView
from pulsarjobs.flow.unique import hold_for
from pulsarjobs.jobs import JobCall
from pulsarjobs.outbox.relay import Relay
from pulsarjobs.outbox.table import NOTIFY_CHANNEL, outbox_table
from pulsarjobs.transport.answers import too_large
from pulsarjobs.wire.envelope import Envelope, encode

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

RELAY_STOP_SECONDS = 15.0  # a wait for leadership ends after the client's operation timeout


class Outbox:
    def __init__(self, app: AppView) -> None:
        self.app = app

    def enqueue(
        self,
        session: Session,
        call: JobCall,
        *,
        in_: timedelta | None = None,
        at: datetime | None = None,
    ) -> str:
        """Write one job into the session's transaction: published once it commits."""
        return self.enqueue_many(session, [call], in_=in_, at=at)[0]

    def enqueue_many(
        self,
        session: Session,
        calls: Sequence[JobCall],
        *,
        in_: timedelta | None = None,
        at: datetime | None = None,
    ) -> list[str]:
        """Write the jobs into the session's transaction, without committing it: the relay
        publishes them once it commits, none if it rolls back. All are encoded first (one that
        cannot be fails the call, before any is written). Returns their ids. A unique job's key
        is claimed when the relay publishes it: if another job holds it then, the row's
        `duplicate_of` says which (`duplicate_of()`) and no job is made."""
        rows = self.rows(calls, in_=in_, at=at)
        if not rows:
            return []
        session.execute(sa.insert(outbox_table), rows)
        if session.get_bind().dialect.name == "postgresql":  # wakes the relay on commit
            session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
        return [row["job_id"] for row in rows]

    def rows(
        self,
        calls: Sequence[JobCall],
        *,
        in_: timedelta | None = None,
        at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The outbox rows of these jobs, column by column, for a database layer other than
        SQLAlchemy to insert in its transaction (Django's ORM: docs/frameworks.md). All are
        encoded first, as `enqueue_many` does; each row's `job_id` is its job's id."""
        return [self._row(self.app.hooks.before_enqueue(self.app.envelope(call, in_=in_, at=at)))
                for call in calls]  # fmt: skip

    async def enqueue_async(
        self,
        session: AsyncSession,
        call: JobCall,
        *,
        in_: timedelta | None = None,
        at: datetime | None = None,
    ) -> str:
        return (await self.enqueue_many_async(session, [call], in_=in_, at=at))[0]

    async def enqueue_many_async(
        self,
        session: AsyncSession,
        calls: Sequence[JobCall],
        *,
        in_: timedelta | None = None,
        at: datetime | None = None,
    ) -> list[str]:
        """`enqueue_many` in an asyncio session's transaction."""
        return await session.run_sync(
            lambda synced: self.enqueue_many(synced, calls, in_=in_, at=at)
        )

    @staticmethod
    def duplicate_of(session: Session, job_id: str) -> str | None:
        """The job holding the unique key of this outbox job when the relay came to publish
        it (so it was not published); None if it was published, or is not yet."""
        query = sa.select(outbox_table.c.duplicate_of).where(outbox_table.c.job_id == job_id)
        return session.execute(query).scalar()

    @contextlib.contextmanager
    def relay(self, engine: sa.Engine, **options: Any) -> Iterator[Relay]:
        """Relay the outbox from a thread of this process while inside (for small services;
        `pulsarjobs outbox relay` runs one on its own). `options`: those of `Relay`."""
        relay = Relay(engine, self.app.connection, **options)
        thread = threading.Thread(target=relay.serve, name="pulsarjobs-outbox-relay", daemon=True)
        thread.start()
        try:
            yield relay
        finally:
            relay.stop()
            thread.join(RELAY_STOP_SECONDS)

    def _row(self, envelope: Envelope) -> dict[str, Any]:
        topic = self.app.queue_topic(envelope)
        payload = encode(envelope)
        if len(payload) > (limit := self.app.settings.max_payload):
            raise too_large(topic, len(payload), limit)
        declared = self.app.jobs.get(envelope.type)
        unique_for = hold_for(declared.flow if declared else None) if envelope.unique_key else None
        return {
            "job_id": envelope.id,
            "topic": topic,
            "payload": payload,
            "properties": {},
            "message_key": envelope.order_key,
            "deliver_at": envelope.run_at,
            "unique_key": envelope.unique_key,
            "unique_for": unique_for.total_seconds() if unique_for else None,
            "created_at": envelope.created_at,
        }
