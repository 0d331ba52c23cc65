"""Grouped jobs under the in-memory TestRunner: members published to a group topic wait in a
buffer on the virtual clock, and a group due is published as its job, as a worker would."""

from __future__ import annotations

from datetime import datetime

from pulsarjobs.app_view import AppView
from pulsarjobs.grouping.buffer import GroupBuffer, PendingGroup
from pulsarjobs.grouping.job import GroupedJob
from pulsarjobs.grouping.members import group_envelope, member_of
from pulsarjobs.grouping.options import UNGROUPED, GroupOptions
from pulsarjobs.transport.memory import PublishedMessage
from pulsarjobs.wire.envelope import decode


class MemoryGroups:
    def __init__(self, app: AppView) -> None:
        self.app = app
        self.buffer = GroupBuffer(self._options)
        self.stored: list[PendingGroup] = []  # every group published as a job, in order

    @property
    def pending(self) -> list[PendingGroup]:
        """The groups still collecting members."""
        return list(self.buffer.groups.values())

    def hold(self, published: PublishedMessage, now: datetime) -> None:
        """A member published to a group topic (an undecodable one raises: a test's mistake)."""
        envelope = decode(published.data, None)
        member = member_of(envelope, published.key or "")
        full = self.buffer.add(envelope.type, envelope.queue, member, published.due, now)
        if full is not None:
            self._store(full, now)

    def next_due(self) -> datetime | None:
        return self.buffer.next_due()

    def store_due(self, now: datetime) -> None:
        for group in self.buffer.take_due(now):
            self._store(group, now)

    def _store(self, group: PendingGroup, now: datetime) -> None:
        job = self.app.jobs.get(group.type)
        self.app.publish_envelope(group_envelope(job, group.type, group.queue, group.members, now))
        self.stored.append(group)

    def _options(self, type_: str) -> GroupOptions:
        job = self.app.jobs.get(type_)
        return job.group if isinstance(job, GroupedJob) else UNGROUPED
