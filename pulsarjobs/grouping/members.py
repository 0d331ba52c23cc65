"""Members on the wire: a member's own envelope on its queue's group topic, and a group's run,
one job whose one argument is the list of its members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pulsarjobs.grouping.options import Member
from pulsarjobs.wire.envelope import Envelope, new_id

if TYPE_CHECKING:
    from pulsarjobs.jobs import Job


def member_of(envelope: Envelope, key: str) -> Member:
    """The member a member's envelope carries (its group key is its message key)."""
    return Member(envelope.id, key, envelope.args, envelope.kwargs)


def group_envelope(
    job: Job[Any, Any] | None, type_: str, queue: str, members: Sequence[Member], now: datetime
) -> Envelope:
    """The job that runs a group: an ordinary job of the queue, retried, timed out, limited
    and dead-lettered as its declaration says (`job` None: a type this app does not know,
    which its run dead-letters)."""
    envelope = Envelope(
        id=new_id(), type=type_, queue=queue, args=([m.as_arg() for m in members],),
        created_at=now,
    )  # fmt: skip
    if job is None:
        return envelope
    keep = job.keep_result.total_seconds() if job.keep_result else None
    return envelope.replace(
        retry=job.retry, timeout=job.timeout, keep_result=keep,
        limit_key=job.name if job.flow.limited else None,
    )  # fmt: skip


def members_of(envelope: Envelope) -> list[Member]:
    """The members a group's job carries."""
    return [Member.from_arg(arg) for arg in envelope.args[0]]  # type: ignore[union-attr]
