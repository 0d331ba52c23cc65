"""What each outcome of a run means: the one table every part of the worker asks.

A delivery of a job ends in one verdict. Its policy says everything that follows from it: what
is published in the message's place before it is acknowledged, whether the job is over (its
kept result stored, its batch and its chain told), whether it succeeded, whether it keeps its
unique key, whether its ordered key's later jobs wait behind it, and which of the worker's
counters moves. Modules ask a verdict's policy; none keeps its own list of verdicts, so a new
verdict is one member here (docs/concepts.md shows the table).

Every verdict gives back the run's slots (`--concurrency`, a concurrency limit) as the run
ends: a job waiting for its time, in place or on the broker, holds none of the limit's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from pulsarjobs.wire.envelope import Envelope, immutable


class Publish(Enum):
    """What is stored in the message's place before it is acknowledged."""

    NOTHING = "nothing"
    RETRY = "the retry topic"  # the envelope, due at its run_at
    DEAD_LETTER = "the dead-letter topic"  # the envelope with its last error, and why
    DEAD_LETTER_AS_RECEIVED = "the dead-letter topic, as received"  # bytes that were no job


@dataclass(frozen=True, slots=True)
class Policy:
    publishes: Publish
    over: bool  # the job is over: its result is kept, its batch and chain hear of it
    succeeded: bool  # a chain goes on from it; its batch counts it as succeeded
    keeps_unique_key: bool  # it is still to run: enqueueing its key again makes no new job
    holds_its_order: (
        bool  # an ordered job waits out its run_at in place, its key's later jobs behind
    )
    counter: str  # the WorkerStats field that counts it
    result_error: str = ""  # a kept result of a job over unsucceeded: this error; "": its own last
    # Its job-index entry is emptied (transport/job_index.py): nothing of it is left to find but
    # a kept result. Not a cancelled job's: Kill and Run now store a copy under its id.
    unindexed: bool = False


class Verdict(StrEnum):
    """What became of one delivery. A str: `outcome.kind == "done"` reads as it always did."""

    policy: Policy

    def __new__(cls, kind: str, policy: Policy) -> Verdict:
        member = str.__new__(cls, kind)
        member._value_ = kind
        member.policy = policy
        return member

    # It ran and returned.
    DONE = "done", Policy(Publish.NOTHING, True, True, False, False, "done", unindexed=True)
    # It failed with attempts left: published again, its attempt + 1, due after its backoff.
    RETRY = "retry", Policy(Publish.RETRY, False, False, True, True, "retried")
    # It failed its last attempt, or can never run (unknown type, arguments that do not fit,
    # too many snoozes, killed its worker process too often).
    DEAD = "dead", Policy(Publish.DEAD_LETTER, True, False, False, False, "dead")
    # The message was no job at all: dead-lettered with its own bytes.
    UNDECODABLE = (
        "undecodable",
        Policy(Publish.DEAD_LETTER_AS_RECEIVED, True, False, False, False, "dead", "Undecodable"),
    )
    # Past its expires_at: acknowledged unrun.
    EXPIRED = (
        "expired",
        Policy(Publish.NOTHING, True, False, False, False, "expired", "Expired", unindexed=True),
    )
    # Delivered before its run_at (the broker may let one out early): never run so.
    EARLY = "early", Policy(Publish.RETRY, False, False, True, True, "early")
    # Cancelled by a user (cancels.py): acknowledged unrun, or its run's result discarded.
    CANCELLED = (
        "cancelled",
        Policy(Publish.NOTHING, True, False, False, False, "cancelled", "Cancelled"),
    )
    # It was running when its worker process died (crashes.py): runs again a little later.
    DEFERRED = "deferred", Policy(Publish.RETRY, False, False, True, True, "deferred")
    # It raised Snooze (snooze.py): runs again later, the same attempt.
    SNOOZED = "snoozed", Policy(Publish.RETRY, False, False, True, True, "snoozed")
    # A durable job parked until a time (its `ctx.sleep`; later an event or its child jobs):
    # published due at its wake-up, the same attempt; its steps are stored apart
    # (workflows/durable.py); it keeps its key and its place in its order, frees its slots,
    # and its batch hears of it only once it is over.
    PARKED = "parked", Policy(Publish.RETRY, False, False, True, True, "parked")
    # A copy of a durable job that another copy carried on past a signalled wait
    # (workflows/signals.py): acknowledged, and nothing else, as a second delivery is.
    SUPERSEDED = "superseded", Policy(Publish.NOTHING, False, False, True, False, "duplicates")
    # A delivery whose work now belongs to another stored job — a later call of a debounced
    # job (flow/debounce.py: "superseded by <id>"), or an aggregate run that carries its
    # arguments — acknowledged unrun, as the user asked by debouncing. It is over, as
    # succeeded: the job it joined does its work, and settles on its own.
    GROUPED = (
        "grouped",
        Policy(Publish.NOTHING, True, True, False, False, "grouped", unindexed=True),
    )


@immutable
class Outcome:
    """What became of a run. `envelope` is what to publish next: the retry (attempt + 1, due
    later), the dead letter (with its last error), or the early job unchanged."""

    kind: Verdict
    envelope: Envelope
    reason: str = ""
    duration: float | None = None  # seconds it ran, failed runs too; None: it did not run
    value: Any = None  # what a done run returned
