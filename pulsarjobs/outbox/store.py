"""What the relay reads and writes in the outbox table, each in a transaction of its own:
the rows to claim, claiming them with their sequence ids, marking them published, its lag.

Only the rows of one namespace's topics are the relay's: an outbox table may hold the jobs of
several namespaces, each relayed by the relays of its namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import overload

import sqlalchemy as sa

from pulsarjobs.outbox.table import outbox_table as table


class ClaimedElsewhere(Exception):
    """Rows to claim had been claimed by another relay."""


@dataclass(frozen=True, slots=True)
class Row:
    """A row to publish, once claimed (`sequence_id`)."""

    id: int
    job_id: str
    topic: str
    payload: bytes
    properties: dict[str, str]
    message_key: str | None
    deliver_at: datetime | None
    unique_key: str | None
    unique_for: float | None
    created_at: datetime
    sequence_id: int | None


@dataclass(frozen=True, slots=True)
class Lag:
    pending: int  # rows not yet published
    oldest: datetime | None  # when the oldest of them was enqueued


class Store:
    def __init__(self, engine: sa.Engine, namespace: str) -> None:
        self.engine = engine
        self.mine = table.c.topic.startswith(f"persistent://{namespace}/", autoescape=True)
        self.unpublished = sa.and_(self.mine, table.c.published_at.is_(None))

    def claimed(self) -> list[Row]:
        """The rows claimed but not marked published, in the order they were claimed."""
        query = self._rows().where(table.c.sequence_id.is_not(None))
        return self._read(query.order_by(table.c.sequence_id))

    def unclaimed(self, limit: int) -> list[Row]:
        """The oldest unclaimed rows this transaction sees: those committed by now."""
        query = self._rows().where(table.c.sequence_id.is_(None))
        return self._read(query.order_by(table.c.id).limit(limit))

    def last_sequence_id(self) -> int:
        """The highest sequence id claimed so far (-1: none)."""
        query = sa.select(sa.func.max(table.c.sequence_id)).where(self.mine)
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        return -1 if found is None else int(found)

    def claim(self, rows: Sequence[Row], first: int) -> list[Row]:
        """Store the sequence ids `first`, `first + 1`, ... in the rows, in their order: the
        rows as claimed, committed when this returns. ClaimedElsewhere if any of them was
        claimed already (nothing is sent then)."""
        claimed = [replace(row, sequence_id=first + index) for index, row in enumerate(rows)]
        update = (
            table.update()
            .where(table.c.id == sa.bindparam("row_id"), table.c.sequence_id.is_(None))
            .values(sequence_id=sa.bindparam("sequence"))
        )
        ids = [row.id for row in claimed]
        with self.engine.begin() as connection:
            connection.execute(
                update, [{"row_id": row.id, "sequence": row.sequence_id} for row in claimed]
            )
            query = sa.select(table.c.id, table.c.sequence_id).where(table.c.id.in_(ids))
            stored = {row_id: sequence for row_id, sequence in connection.execute(query)}
        if any(stored.get(row.id) != row.sequence_id for row in claimed):
            # A relay that lost its leadership without knowing it yet: its numbers must not
            # go out under rows another relay numbered.
            raise ClaimedElsewhere("another outbox relay claimed these rows: not leading")
        return claimed

    def mark_published(self, rows: Sequence[Row], duplicates: dict[int, str]) -> None:
        """The broker stored these rows (but those in `duplicates`: row id -> the job that
        holds its unique key, which were not published)."""
        now = datetime.now(UTC)
        update = (
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(published_at=now, duplicate_of=sa.bindparam("holder"))
        )
        with self.engine.begin() as connection:
            connection.execute(
                update, [{"row_id": row.id, "holder": duplicates.get(row.id)} for row in rows]
            )

    def prune(self, older_than: timedelta) -> int:
        """Delete the rows published longer ago than `older_than`; how many."""
        cutoff = datetime.now(UTC) - older_than
        delete = table.delete().where(self.mine, table.c.published_at < cutoff)
        with self.engine.begin() as connection:
            return connection.execute(delete).rowcount

    def lag(self) -> Lag:
        query = sa.select(sa.func.count(), sa.func.min(table.c.created_at)).where(self.unpublished)
        with self.engine.connect() as connection:
            pending, oldest = connection.execute(query).one()
        return Lag(int(pending), aware(oldest))

    def duplicates(self) -> int:
        """The unique jobs not published because another job held their key, among the rows
        still kept (the relay deletes published rows a while after)."""
        query = sa.select(sa.func.count()).where(self.mine, table.c.duplicate_of.is_not(None))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def _rows(self) -> sa.Select[tuple[object, ...]]:
        columns = [getattr(table.c, name) for name in Row.__slots__]
        return sa.select(*columns).where(self.unpublished)

    def _read(self, query: sa.Select[tuple[object, ...]]) -> list[Row]:
        with self.engine.connect() as connection:
            rows = [Row(**found._asdict()) for found in connection.execute(query)]
        return [replace(row, deliver_at=aware(row.deliver_at), created_at=aware(row.created_at))
                for row in rows]  # fmt: skip


@overload
def aware(instant: datetime) -> datetime: ...


@overload
def aware(instant: None) -> None: ...


@overload
def aware(instant: datetime | None) -> datetime | None: ...


def aware(instant: datetime | None) -> datetime | None:
    """SQLite keeps no time zone: what it stored is UTC."""
    return instant.replace(tzinfo=UTC) if instant and instant.tzinfo is None else instant
