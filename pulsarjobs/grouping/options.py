"""What a grouped job declares (`@app.job(group=GroupOptions(...))`), and a member as its
handler receives it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.wire.values import JobArg

DEFAULT_GROUP_KEY = ""  # the group of members enqueued without a key


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """A group runs once it holds `max_size` members, once `grace` passed with no new member,
    or once `max_delay` passed since its first member was enqueued, whichever comes first."""

    max_size: int = 100
    grace: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ConfigurationError(f"group max_size must be >= 1, got {self.max_size}")
        if self.grace <= timedelta(0):
            raise ConfigurationError(f"group grace must be positive, got {self.grace}")
        if self.max_delay < self.grace:
            raise ConfigurationError(
                f"group max_delay ({self.max_delay}) must be at least its grace ({self.grace})"
            )


# What a worker does with members of a job it does not know as grouped: each alone, at once
# (its run then says why it cannot run: no such job, say).
UNGROUPED = GroupOptions(max_size=1, grace=timedelta(seconds=1), max_delay=timedelta(seconds=1))


@dataclass(frozen=True, slots=True)
class Member:
    """One enqueued member of a group: its job id, its group key and its arguments."""

    id: str
    key: str
    args: tuple[JobArg, ...] = ()
    kwargs: Mapping[str, JobArg] = field(default_factory=dict)

    def as_arg(self) -> dict[str, JobArg]:
        """As it travels inside its group's job."""
        return {"id": self.id, "key": self.key, "args": list(self.args),
                "kwargs": dict(self.kwargs)}  # fmt: skip

    @classmethod
    def from_arg(cls, arg: Any) -> Member:
        return cls(arg["id"], arg["key"], tuple(arg["args"]), arg["kwargs"])
