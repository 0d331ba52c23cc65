"""A batch's state as its workers store it, and its progress as operators see it.

The compacted topic `pulsarjobs-batches` holds, by key:

- `<batch id>@<worker>`: the batch as that worker counted it: its jobs (members), those that
  succeeded, those that did not, whether it is closed. Sets that only grow, so the batch is the
  union of every worker's record: a worker that wrote late, from an older view, cannot undo what
  another counted (docs/workflows.md).
- `<batch id>`: its end. `firing` while its callbacks are being enqueued, then `done` with its
  final counts; the per-worker records are removed then.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pulsarjobs.transport import marks
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import batches_topic
from pulsarjobs.wire.envelope import Envelope, decode, encode
from pulsarjobs.wire.records import decode_record, encode_record

OWNER_SEPARATOR = "@"
MEMBERS_LISTED = 100  # pending and dead member ids a batch's progress names (the page links them)
BatchStage = Literal["open", "running", "complete"]


@dataclass
class BatchState:
    id: str
    description: str = ""
    parent: str | None = None
    created_at: str = ""
    callbacks: dict[str, str] = field(default_factory=dict)  # name -> encoded envelope
    closed: bool = False
    members: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)  # ended without succeeding (then maybe did)

    @property
    def complete(self) -> bool:
        return self.closed and self.members <= self.succeeded | self.dead

    @property
    def all_succeeded(self) -> bool:
        return self.members <= self.succeeded

    def apply(self, event: dict[str, Any]) -> None:
        """One event of batches.py; told twice, it changes nothing the second time."""
        match event.get("kind"):
            case "opened":
                self.description = event.get("description", "")
                self.parent = event.get("parent")
                self.created_at = event.get("created_at", "")
                self.callbacks = event.get("callbacks", {})
            case "closed":
                self.closed = True
                self.members.update(event.get("members", ()))
            case "added":
                self.members.update(event.get("members", ()))
            case "settled":
                (self.succeeded if event.get("ok") else self.dead).add(event["job"])

    def merge(self, other: BatchState) -> None:
        if other.created_at and not self.created_at:
            self.description, self.parent = other.description, other.parent
            self.created_at, self.callbacks = other.created_at, other.callbacks
        self.closed = self.closed or other.closed
        self.members |= other.members
        self.succeeded |= other.succeeded
        self.dead |= other.dead

    def encode(self) -> bytes:
        fields = {
            "description": self.description,
            "parent": self.parent,
            "created_at": self.created_at,
            "callbacks": self.callbacks,
            "closed": self.closed,
            "members": sorted(self.members),
            "succeeded": sorted(self.succeeded),
            "dead": sorted(self.dead),
        }
        return encode_record(fields)

    @classmethod
    def decode(cls, batch_id: str, data: bytes) -> BatchState:
        """Raises ValueError for a message that is no batch state."""
        return decode_record(
            data,
            "batch state",
            lambda f: cls(
                batch_id,
                f["description"],
                f["parent"],
                f["created_at"],
                f["callbacks"],
                f["closed"],
                set(f["members"]),
                set(f["succeeded"]),
                set(f["dead"]),
            ),
        )

    def progress(self) -> BatchProgress:
        known = self.members | self.succeeded | self.dead  # an open batch's jobs are told at close
        succeeded = len(known & self.succeeded)
        dead = len(known & (self.dead - self.succeeded))
        stage: BatchStage = "complete" if self.complete else "running" if self.closed else "open"
        pending_jobs = tuple(sorted(known - self.succeeded - self.dead)[:MEMBERS_LISTED])
        dead_jobs = tuple(sorted(known & (self.dead - self.succeeded))[:MEMBERS_LISTED])
        return BatchProgress(self.id, self.description, self.parent, self.created_at, stage,
                             len(known), succeeded, dead, pending_jobs=pending_jobs,
                             dead_jobs=dead_jobs)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchProgress:
    id: str
    description: str
    parent: str | None
    created_at: str  # ISO 8601, UTC
    stage: BatchStage  # open: its `with` block runs; running: closed, jobs left; complete
    total: int
    succeeded: int
    dead: int  # dead-lettered, expired or cancelled (and not succeeded since)
    finished_at: str | None = None
    fired: tuple[str, ...] = ()  # the callbacks enqueued: on_complete, on_success
    pending_jobs: tuple[str, ...] = ()  # ids, the first MEMBERS_LISTED (none once it ended)
    dead_jobs: tuple[str, ...] = ()

    @property
    def pending(self) -> int:
        return self.total - self.succeeded - self.dead

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "parent": self.parent,
            "stage": self.stage,
            "total": self.total,
            "pending": self.pending,
            "succeeded": self.succeeded,
            "dead": self.dead,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "fired": list(self.fired),
            "pending_jobs": list(self.pending_jobs),
            "dead_jobs": list(self.dead_jobs),
        }


def callback_text(envelope: Envelope) -> str:
    return base64.b64encode(encode(envelope)).decode()


def due_callbacks(state: BatchState) -> dict[str, Envelope]:
    """The callbacks a complete batch enqueues, by name: on_complete, and on_success if every
    job of it succeeded."""
    names = ["on_complete"] + (["on_success"] if state.all_succeeded else [])
    return {n: decode(base64.b64decode(state.callbacks[n])) for n in names if n in state.callbacks}


def final_record(state: BatchState, fired: list[str]) -> bytes:
    """A completed batch's record: its counts, and of its job ids only the dead ones (the
    first MEMBERS_LISTED), for the page to link them."""
    progress = state.progress()
    fields = {
        "state": "done",
        "description": state.description,
        "parent": state.parent,
        "created_at": state.created_at,
        "total": progress.total,
        "succeeded": progress.succeeded,
        "dead": progress.dead,
        "dead_jobs": list(progress.dead_jobs),
        "fired": fired,
        "finished_at": datetime.now(UTC),
    }
    return encode_record(fields)


def firing_record(at: datetime) -> bytes:
    return encode_record({"state": "firing", "at": at})


class BatchTable:
    """The compacted topic read as a table: every batch's state, merged from its records."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, BatchState]] = {}  # batch id -> worker -> its record
        self.ends: dict[str, dict[str, Any]] = {}  # batch id -> its `firing` or `done` record

    def apply(self, key: str, data: bytes) -> str:
        """Take one message of the topic in; returns the id of the batch it is about."""
        batch_id, _, owner = key.partition(OWNER_SEPARATOR)
        if not owner:
            with contextlib.suppress(ValueError):
                self.ends[batch_id] = decode_record(data, "batch end", dict) if data else {}
        elif not data:
            records = self.states.get(batch_id, {})
            records.pop(owner, None)
            if not records:
                self.states.pop(batch_id, None)
        else:
            with contextlib.suppress(ValueError):  # not a state of ours: ignored
                self.states.setdefault(batch_id, {})[owner] = BatchState.decode(batch_id, data)
        return batch_id

    def state(self, batch_id: str) -> BatchState:
        merged = BatchState(batch_id)
        for record in self.states.get(batch_id, {}).values():
            merged.merge(record)
        return merged

    def ended(self, batch_id: str) -> bool:
        return self.ends.get(batch_id, {}).get("state") == "done"

    def progress(self, batch_id: str) -> BatchProgress | None:
        end = self.ends.get(batch_id, {})
        if end.get("state") == "done":
            return BatchProgress(batch_id, end["description"], end["parent"], end["created_at"],
                                 "complete", end["total"], end["succeeded"], end["dead"],
                                 end["finished_at"], tuple(end["fired"]),
                                 dead_jobs=tuple(end.get("dead_jobs", ())))  # fmt: skip
        return self.state(batch_id).progress() if batch_id in self.states else None

    def all(self) -> list[BatchProgress]:
        """Every batch, the newest first."""
        found = (self.progress(batch_id) for batch_id in {*self.states, *self.ends})
        return sorted((p for p in found if p), key=lambda p: p.created_at, reverse=True)


def read_table(connection: Connection) -> BatchTable:
    """The batches as the workers last stored them."""
    table = BatchTable()
    for key, data in marks.read(connection, batches_topic(connection.settings)).items():
        table.apply(key, data)
    return table
