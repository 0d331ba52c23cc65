"""Members waiting for their group to run, by job type and group key: when a group is due.

Pure bookkeeping, used alike by the worker's collector (worker/group_collector.py), on the wall
clock, and by the in-memory TestRunner, on its virtual clock. `held` is whatever settles a member
once its group's job is stored: a Pulsar message to acknowledge, or nothing in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pulsarjobs.grouping.options import GroupOptions, Member


@dataclass
class PendingGroup:
    type: str
    key: str
    queue: str
    options: GroupOptions
    first_enqueued: datetime  # the earliest enqueue of its members: max_delay counts from it
    last_arrived: datetime  # grace counts from it
    members: list[Member] = field(default_factory=list)
    held: list[Any] = field(default_factory=list)

    @property
    def due(self) -> datetime:
        options = self.options
        return min(self.first_enqueued + options.max_delay, self.last_arrived + options.grace)


class GroupBuffer:
    def __init__(self, options_of: Callable[[str], GroupOptions]) -> None:
        self.options_of = options_of  # of a job type
        self.groups: dict[tuple[str, str, str], PendingGroup] = {}  # by type, queue and key

    def add(
        self, type_: str, queue: str, member: Member, enqueued: datetime, now: datetime,
        held: Any = None,
    ) -> PendingGroup | None:  # fmt: skip
        """Hold a member; its group, taken out, if that made it full. A member enqueued long
        ago (delivered again after its worker died) makes its group due at once."""
        ident = (type_, queue, member.key)
        group = self.groups.get(ident)
        if group is None:
            group = PendingGroup(type_, member.key, queue, self.options_of(type_),
                                 min(enqueued, now), now)  # fmt: skip
            self.groups[ident] = group
        group.first_enqueued = min(group.first_enqueued, enqueued)
        group.last_arrived = now
        group.members.append(member)
        group.held.append(held)
        if len(group.members) >= group.options.max_size:
            return self.groups.pop(ident)
        return None

    def next_due(self) -> datetime | None:
        return min((group.due for group in self.groups.values()), default=None)

    def take_due(self, now: datetime) -> list[PendingGroup]:
        """The groups whose grace or max_delay has passed, taken out."""
        due = [ident for ident, group in self.groups.items() if group.due <= now]
        return [self.groups.pop(ident) for ident in due]
