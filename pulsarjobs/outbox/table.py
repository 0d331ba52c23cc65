"""The outbox table: one row per job written by `Outbox.enqueue`, the encoded envelope as it
will be published, until the relay has published it.

A row's life: inserted in the caller's transaction (`sequence_id` and `published_at` null);
claimed by the relay, which stores the sequence id it publishes it under (committed before it
is sent); marked published (`published_at`) once the broker stored it, or, for a unique job
whose key another job held, marked with `duplicate_of` (the holder's id) and not published.
"""

from __future__ import annotations

import sqlalchemy as sa

TABLE_NAME = "pulsarjobs_outbox"
NOTIFY_CHANNEL = "pulsarjobs_outbox"  # PostgreSQL: each enqueue notifies it, delivered on commit

metadata = sa.MetaData()  # include it in your Alembic env's target_metadata

outbox_table = sa.Table(
    TABLE_NAME,
    metadata,
    # SQLite gives an INTEGER PRIMARY KEY its rowid; PostgreSQL an identity.
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True
    ),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),  # the encoded envelope
    sa.Column("properties", sa.JSON, nullable=False),  # the message's properties
    sa.Column("message_key", sa.Text),  # an ordered job's order key
    sa.Column("deliver_at", sa.DateTime(timezone=True)),  # a scheduled job's run_at
    sa.Column("unique_key", sa.Text),  # claimed by the relay, held `unique_for` seconds
    sa.Column("unique_for", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sequence_id", sa.BigInteger),  # null until claimed
    sa.Column("published_at", sa.DateTime(timezone=True)),  # null until the broker stored it
    sa.Column("duplicate_of", sa.String(64)),  # the job holding its unique key: not published
    sa.Index(
        "pulsarjobs_outbox_unpublished",
        "id",
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    ),
)
