"""The outbox's lag as its relays' heartbeats tell it (outbox/presence.py): for `pulsarjobs
queues` and the dashboard, which read the broker and have no database URL. `pulsarjobs outbox
status` reads the same from the table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.wire.heartbeat import Heartbeat


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int  # committed outbox jobs of the namespace the broker does not have yet
    oldest_pending_seconds: float | None  # how long ago the oldest was enqueued; None: none
    relays: int  # relays running now, leading or standing by
    leader: str | None  # the relay that publishes; None: none does
    told_seconds_ago: float  # the age of the heartbeat that told this

    def sentence(self) -> str:
        """One line for operators."""
        oldest = self.oldest_pending_seconds
        lag = f"{self.pending} jobs not yet published"
        lag += f", the oldest enqueued {oldest:.1f} s ago" if oldest is not None else ""
        if not self.relays:
            told = f"{self.told_seconds_ago:.0f} s ago"
            return f"Outbox: no relay running (the last one told {lag}, {told})"
        leads = f"{self.leader} publishes" if self.leader else "none publishes yet"
        return f"Outbox: {lag} ({self.relays} relays running: {leads})"


def outbox_status(beats: Iterable[Heartbeat], now: datetime) -> OutboxStatus | None:
    """The lag the newest heartbeat of a relay tells, running or gone (not one that stopped);
    None when no relay of the namespace has run (or all stopped)."""
    relays = [beat for beat in beats if beat.outbox is not None and beat.state != "stopped"]
    if not relays:
        return None
    running = [beat for beat in relays if beat.seen_at(now) != "gone"]
    newest = max(running or relays, key=lambda beat: beat.sent_at)
    assert newest.outbox is not None
    oldest = newest.outbox.oldest
    return OutboxStatus(
        pending=newest.outbox.pending,
        oldest_pending_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else None,
        relays=len(running),
        leader=next((b.worker for b in running if b.outbox and b.outbox.leading), None),
        told_seconds_ago=max(0.0, (now - newest.sent_at).total_seconds()),
    )
