"""The transactional outbox (docs/outbox.md): jobs written into the caller's database
transaction, published by a relay once committed. Needs `pulsarjobs[outbox]` (SQLAlchemy)."""

from pulsarjobs.outbox.outbox import Outbox
from pulsarjobs.outbox.relay import Relay
from pulsarjobs.outbox.table import metadata, outbox_table

__all__ = ["Outbox", "Relay", "metadata", "outbox_table"]
