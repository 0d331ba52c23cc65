"""Grouped jobs' members still waiting for their group to run, as operators see them: the
backlog of a queue's group topic, counted by member and by group (job type and group key)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pulsar

from pulsarjobs.wire.envelope import Envelope


@dataclass(frozen=True, slots=True)
class PendingGroups:
    members: int  # not yet in a stored group: held by a worker, or not yet delivered
    groups: int  # distinct job types and group keys among them
    exact: bool = True  # False: more members than were read; `groups` counts those read

    def __str__(self) -> str:
        if not self.members:
            return "-"
        groups = f"{self.groups}" if self.exact else f"≥{self.groups}"
        return f"{self.members} in {groups}"


NO_GROUPS = PendingGroups(0, 0)


def pending_groups(
    members: int,
    backlog: Callable[[], Iterable[pulsar.Message]],
    envelope_of: Callable[[pulsar.Message], Envelope | None],
    scan_limit: int,
) -> PendingGroups:
    """`members` by the broker's count; their groups from reading up to `scan_limit` of them."""
    if members == 0:
        return NO_GROUPS
    keys: set[tuple[str, str]] = set()
    read = 0
    for read, message in enumerate(backlog(), start=1):
        if read > scan_limit:
            return PendingGroups(members, len(keys), exact=False)
        envelope = envelope_of(message)
        keys.add(("" if envelope is None else envelope.type, message.partition_key()))
    return PendingGroups(max(members, read), len(keys))
