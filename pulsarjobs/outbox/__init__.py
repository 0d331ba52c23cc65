"""The transactional outbox (docs/outbox.md): jobs written into the caller's database
transaction, published by a relay once committed. Needs `pulsarjobs[outbox]` (SQLAlchemy)."""

from pulsarjobs.outbox.outbox import Outbox
from pulsarjobs.outbox.relay import Relay
from pulsarjobs.outbox.table import NOTIFY_CHANNEL, metadata, outbox_table

__all__ = ["NOTIFY_CHANNEL", "Outbox", "Relay", "metadata", "outbox_table"]
