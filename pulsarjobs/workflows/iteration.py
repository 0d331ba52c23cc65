"""Durable iteration: a durable job that works through a long collection goes on where it
stopped, not from the start (`ctx.iterate`, durable.py).

The job says how to list the items after a cursor: `items_after(cursor)` yields
`(cursor, item)` pairs, each cursor the position just past its item (None: from the start).
Once an item is processed — the loop asks for the next — its cursor is the job's position; the
position is stored as a step of the job every `every` items or `seconds` seconds, when its
worker is asked to stop, and at the end. A run after a crash starts after the last stored
position: at most the items processed since it run again. A run whose worker is asked to stop
stores its position after the item in hand and ends PARKED, due at once: another worker (or the
same one, restarted) goes on from there, and nothing runs twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol

ITERATE_EVERY = 1_000  # items between two stored positions, at most
ITERATE_SECONDS = 10.0  # seconds between two stored positions, at most

ItemsAfter = Callable[[Any], Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]]]


class ThisRun(Protocol):
    """The run of the job, as iteration asks it (a `CurrentJob`)."""

    @property
    def stopping(self) -> bool: ...

    def progress(self, done: float, total: float | None = None, message: str = "") -> None: ...


class Position:
    """Where an iteration of the job is: what a run found stored, and how far it went since."""

    def __init__(self, name: str, stored: Any, keep: Callable[[Any], Future[None]],
                 run: ThisRun, every: int, seconds: float) -> None:  # fmt: skip
        if every < 1 or seconds <= 0:
            raise ValueError(
                f"iterate {name!r}: every >= 1 and seconds > 0, got {every}, {seconds}"
            )
        self.name = name
        self.cursor: Any = None if stored is None else stored["cursor"]
        self.count: int = 0 if stored is None else stored["count"]
        self.done = stored is not None and bool(stored["done"])
        self._keep = keep  # stores the position (as a step of the job)
        self._run = run
        self._every, self._seconds = every, seconds
        self._since, self._saved_at = 0, time.monotonic()

    def passed(self, cursor: Any) -> Future[None] | None:
        """The item before `cursor` is processed: the storing of the position, when it is due."""
        self.cursor, self.count, self._since = cursor, self.count + 1, self._since + 1
        if self._since >= self._every or time.monotonic() - self._saved_at >= self._seconds:
            return self.save()
        return None

    @property
    def stopping(self) -> bool:
        return self._run.stopping

    def save(self, done: bool = False) -> Future[None]:
        self._since, self._saved_at = 0, time.monotonic()
        self._run.progress(self.count, None, f"{self.name}: {self.count} items")
        return self._keep({"cursor": self.cursor, "count": self.count, "done": done})


class Stopped(Exception):
    """The worker is asked to stop: the position is stored, the run ends (durable.py parks it,
    due now)."""


def iterate_sync(position: Position, items_after: ItemsAfter) -> Iterator[Any]:
    if position.done:
        return
    items = items_after(position.cursor)
    if not isinstance(items, Iterable):
        raise TypeError(f"iterate {position.name!r}: items_after gave an async iterable; "
                        "use `async for ... in ctx.iterate(...)`")  # fmt: skip
    for cursor, item in items:
        yield item
        if (storing := position.passed(cursor)) is not None:
            storing.result()
        if position.stopping:
            position.save().result()
            raise Stopped
    position.save(done=True).result()


async def iterate_async(position: Position, items_after: ItemsAfter) -> AsyncIterator[Any]:
    if position.done:
        return
    items = items_after(position.cursor)
    pairs = items if isinstance(items, AsyncIterable) else _as_async(items)
    async for cursor, item in pairs:
        yield item
        if (storing := position.passed(cursor)) is not None:
            await asyncio.wrap_future(storing)
        if position.stopping:
            await asyncio.wrap_future(position.save())
            raise Stopped
    await asyncio.wrap_future(position.save(done=True))


async def _as_async(items: Iterable[tuple[Any, Any]]) -> AsyncIterator[tuple[Any, Any]]:
    for pair in items:
        yield pair
