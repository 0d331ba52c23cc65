"""Debounced jobs: many calls of one key in a short while make one run, `period` after the last
call and at most `timeout` after the first, with the last call's arguments (or the first's).

Each call is a job of its own, published due at that time. The key's window lives on the
compacted topic `pulsarjobs-debounce` (key_table.py): key -> the latest call and its job, when
the window began, how many calls it holds (and, to keep the first call's arguments, those), and
whether it is closed. A call reads the table, publishes its job, then writes itself as the
latest — in that order, so that the table never names a job the broker does not hold; a call
that finds no window, a closed one or one past its timeout opens a new one. When a job comes
due, the worker reads the table to its end: if another call of its key was stored there since
this one read it, the job is acknowledged unrun (verdict `grouped`, "superseded by <id>": the
user asked for that by debouncing); else it runs, and closes its window as it starts. The close
is written under a key of its own (`<key>#closed`, naming the call whose run started): written
over the window's own key, it would erase a call that opened the next window in the meantime.
A closed window is kept a day (jobs it superseded may still be waiting for a worker), then
removed. The exact guarantee is in docs/flow-control.md.

Each job carries its call's id, the id of the call it read as the latest, and when its window
began (in its meta): a job whose own write is not in the table (its process died between its
job and its write) is not taken as superseded by the call before it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.jobs import Debounce
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.key_table import KeyTable
from pulsarjobs.transport.topics import debounce_topic
from pulsarjobs.wire.envelope import Envelope, decode, encode, new_id
from pulsarjobs.wire.records import decode_record, encode_record, instant

CALL_META = "pulsarjobs-debounce-call"  # this call's id
AFTER_META = "pulsarjobs-debounce-after"  # the call it read as its key's latest ("": none)
WINDOW_META = "pulsarjobs-debounce-window"  # when the window it joined began (ISO 8601)
CLOSED_SUFFIX = "#closed"  # `<key>#closed`: the window whose run started (or ended unrun)
KEPT_CLOSED = timedelta(days=1)  # a closed window is removed once due this long ago
PRUNED_PER_RUN = 100  # closed windows a run removes at most


@dataclass(frozen=True, slots=True)
class Window:
    """A key's window: its latest call and job, when it began, how many calls it holds, its
    job's due time, (keep="first") the first call's arguments as an encoded envelope, and
    whether its run started (or its latest job ended unrun): it is closed (records written
    before CLOSED_SUFFIX carry that in `closed`; a `<key>#closed` record always does)."""

    key: str
    call: str
    job_id: str
    type: str
    queue: str
    started_at: datetime
    due_at: datetime
    calls: int
    first: bytes | None = None
    closed: bool = False
    # The window before it, if any: when it began (ISO 8601), its last call and that call's job
    # (jobs of that window still due give way to its last call, not to this window's).
    previous: tuple[str, str, str] | None = None

    @property
    def debounce_key(self) -> str:
        """The key as the calls gave it (the table's is per job type: table_key)."""
        return self.key.removeprefix(f"{self.type}/")

    def encode(self) -> bytes:
        fields = {
            "call": self.call,
            "job_id": self.job_id,
            "type": self.type,
            "queue": self.queue,
            "started_at": self.started_at,
            "due_at": self.due_at,
            "calls": self.calls,
            "first": None if self.first is None else base64.b64encode(self.first).decode(),
            "closed": self.closed,
            "previous": self.previous,
        }
        return encode_record(fields)

    @classmethod
    def decode(cls, key: str, data: bytes) -> Window:
        """Raises ValueError for a message that is no window."""
        return decode_record(
            data,
            "debounce window",
            lambda f: cls(key, f["call"], f["job_id"], f["type"], f["queue"],
                          instant(f["started_at"]), instant(f["due_at"]), int(f["calls"]),
                          None if f["first"] is None else base64.b64decode(f["first"]),
                          bool(f["closed"]), _previous(f.get("previous"))),
        )  # fmt: skip


def _previous(value: list[str] | None) -> tuple[str, str, str] | None:
    if value is None:
        return None
    started, call, job_id = value
    return started, call, job_id


def table_key(envelope: Envelope) -> str:
    """Keys are per job type: two types given one key do not collapse into each other."""
    return f"{envelope.type}/{envelope.debounce_key}"


class Debounces:
    """The open windows as this process last read them: calls join them, due jobs ask them."""

    def __init__(
        self,
        connection: Connection,
        clock: Clock = utc_now,
        table: type[KeyTable[Window]] = KeyTable,
    ) -> None:
        self.connection = connection
        self.clock = clock
        self.topic = debounce_topic(connection.settings)
        self.table = table(connection, self.topic, Window.decode)

    def call(
        self, envelope: Envelope, debounce: Debounce, send: Callable[[Envelope], Future[None]]
    ) -> Envelope:
        """Publish the call's job, due when its window says, and make it the key's latest;
        returns the job sent, once both are stored."""
        key = table_key(envelope)
        read = self.table.get(key)
        now = self.clock()
        window = read if read is not None and self._joins(read, debounce, now) else None
        started = now if window is None else window.started_at
        due = now + debounce.period
        if debounce.timeout is not None:
            due = min(due, started + debounce.timeout)
        first = window.first if window is not None else None
        if debounce.keep == "first" and first is None:  # this call opens the window
            first = encode(Envelope("", envelope.type, envelope.queue, envelope.args,
                                    envelope.kwargs))  # fmt: skip
        call = {CALL_META: new_id(), AFTER_META: "" if read is None else read.call,
                WINDOW_META: started.isoformat()}  # fmt: skip
        job = envelope.replace(run_at=due, meta={**envelope.meta, **call})
        if debounce.keep == "first" and first is not None:
            kept = decode(first)
            job = job.replace(args=kept.args, kwargs=kept.kwargs)
        send(job).result()
        calls = 1 if window is None else window.calls + 1
        if window is not None:
            previous = window.previous
        elif read is not None:  # a window before this one
            previous = (read.started_at.isoformat(), read.call, read.job_id)
        else:
            previous = None
        latest = Window(key, call[CALL_META], job.id, job.type, job.queue, started, due, calls,
                        first, previous=previous)  # fmt: skip
        self.connection.put_mark(self.topic, key, latest.encode())
        return job

    def _joins(self, window: Window, debounce: Debounce, now: datetime) -> bool:
        """Whether a call now joins the window: its run has not started, and its timeout (if
        any) has not passed — a call after it opens a new window, and the old one's job runs."""
        return not self._closed(window) and (
            debounce.timeout is None or now < window.started_at + debounce.timeout
        )

    def _closed(self, window: Window) -> bool:
        """Whether the run of the window's latest call started (or it ended unrun)."""
        marker = self.table.known(window.key + CLOSED_SUFFIX)  # read with the window
        return window.closed or (marker is not None and marker.call == window.call)

    def _close(self, window: Window) -> None:
        marker = window.key + CLOSED_SUFFIX
        self.connection.put_mark(
            self.topic, marker, replace(window, key=marker, closed=True).encode()
        )

    def superseded_by(self, envelope: Envelope) -> str | None:
        """The id of the job of a later call that the due `envelope` gives way to; None: it
        runs, and its window is closed first. A job enqueued without a call id (not through
        `enqueue`) and a run decided already (a retry, a snooze) always run."""
        call = envelope.meta.get(CALL_META)
        if call is None or envelope.attempt > 1 or envelope.snoozes:
            return None
        key, after = table_key(envelope), envelope.meta.get(AFTER_META)
        window = self.table.get(key)
        if window is None or window.call == after:
            return None  # no other call since it read the table: its own write is not there
        if window.call == call:
            if not self._closed(window):  # a call from now on opens a new window
                self._close(window)
                self._prune()
            return None
        joined = envelope.meta.get(WINDOW_META)
        if window.previous is not None and window.previous[0] == joined:  # its window is over
            _, last_call, last_job = window.previous
            return None if last_call in (call, after) else last_job
        return window.job_id  # a later call of its window, or of a window after it

    def settled(self, envelope: Envelope) -> None:
        """A debounced job over without running (cancelled, expired, dead unrun): its window
        closes if it is still the latest, so that the next call opens a new one."""
        key = table_key(envelope)
        window = self.table.get(key)
        called = envelope.meta.get(CALL_META)
        if window is not None and window.call == called and not self._closed(window):
            self._close(window)

    def _prune(self) -> None:
        """Remove windows closed a day ago: the jobs they superseded have come due long since."""
        long_ago = self.clock() - KEPT_CLOSED
        closed = {w.key for w in self.table.values() if w.closed}  # markers, and old closes
        old = [w.key for w in self.table.values() if w.due_at < long_ago
               and (w.key in closed or w.key + CLOSED_SUFFIX in closed)]  # fmt: skip
        for key in old[:PRUNED_PER_RUN]:
            self.connection.put_mark(self.topic, key, b"")

    def windows(self) -> list[Window]:
        """Every open window (pending debounces), the soonest due first."""
        windows = [window for window in self.table.values()
                   if not window.closed and not self._closed(window)]  # fmt: skip
        return sorted(windows, key=lambda window: window.due_at)

    def close(self) -> None:
        self.table.close()
