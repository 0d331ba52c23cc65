"""Grouped jobs under the in-memory TestRunner: members published to a group topic wait in a
buffer on the virtual clock, and a group due is published as its job, as a worker would."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from pulsarjobs.app_view import AppView
from pulsarjobs.grouping.buffer import GroupBuffer, PendingGroup
from pulsarjobs.grouping.job import GroupedJob
from pulsarjobs.grouping.members import group_envelope, member_of
from pulsarjobs.grouping.options import UNGROUPED, GroupOptions
from pulsarjobs.transport.memory import PublishedMessage
from pulsarjobs.transport.topics import is_group_topic
from pulsarjobs.wire.envelope import decode


class Due(Protocol):
    @property
    def due(self) -> datetime: ...


class MemoryGroups:
    def __init__(self, app: AppView) -> None:
        self.app = app
        self.buffer = GroupBuffer(self._options)
        self.stored: list[PendingGroup] = []  # every group published as a job, in order

    @property
    def pending(self) -> list[PendingGroup]:
        """The groups still collecting members."""
        return list(self.buffer.groups.values())

    def held(self, published: PublishedMessage, now: datetime) -> bool:
        """Whether the message was a member, now held in its group (an undecodable one raises:
        a test's mistake)."""
        if not is_group_topic(published.topic):
            return False
        envelope = decode(published.data, None)
        member = member_of(envelope, published.key or "")
        full = self.buffer.add(envelope.type, envelope.queue, member, published.due, now)
        if full is not None:
            self._store(full, now)
        return True

    def store_next(
        self, horizon: datetime | None, pending: Sequence[Due], move_to: Callable[[datetime], None]
    ) -> bool:
        """Store the groups due next, moving the clock to them, if they are due by `horizon`
        (None: whenever) and no later than the first `pending` job; whether there were any."""
        due = self.buffer.next_due()
        if due is None or (horizon is not None and due > horizon):
            return False
        if pending and pending[0].due < due:
            return False
        move_to(due)
        for group in self.buffer.take_due(due):
            self._store(group, due)
        return True

    def _store(self, group: PendingGroup, now: datetime) -> None:
        if not group.members:  # every member cancelled: nothing to run
            return
        job = self.app.jobs.get(group.type)
        self.app.publish_envelope(group_envelope(job, group.type, group.queue, group.members, now))
        self.stored.append(group)

    def _options(self, type_: str) -> GroupOptions:
        job = self.app.jobs.get(type_)
        return job.group if isinstance(job, GroupedJob) else UNGROUPED
