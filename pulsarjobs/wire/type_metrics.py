"""Metrics by job type, a minute at a time: what workers publish to the metrics topic
(`pulsarjobs-metrics`) and the dashboard's Metrics page reads back for up to a week.

A worker process counts each verdict by (job type, queue) and drops each run time and each
wait to start into a bucket of a FIXED histogram; each minute it publishes what it counted since
its last report (a `Report`) and starts again from zero. Counts and histograms of the same
minute, from any number of workers, therefore add up by summing: every worker uses the same
buckets, and a percentile is read off the summed histogram.

A report also carries the size and oldest-job age of the worker's queues as the broker tells
them that minute; several workers serving a queue each write it, and the reader keeps the
latest of each minute.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Upper bounds in seconds (the Prometheus metrics use the same, metrics.py); one bucket more
# counts what is over the last bound.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                300)  # fmt: skip
FAILED = ("retried", "dead")  # the verdict counters (verdicts.py) of runs that failed
PROCESSED = ("done", *FAILED)  # ... of runs that ended with a verdict


def bucket(bounds: Sequence[float], seconds: float) -> int:
    """The index of the bucket `seconds` falls into (a value on a bound counts below it)."""
    return bisect_left(bounds, seconds)


def merged(into: list[int], counts: Sequence[int]) -> None:
    """Add a histogram's counts into another of the same buckets."""
    for index, count in enumerate(counts):
        into[index] += count


def percentile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The value below which a share `q` of the observations fall, interpolated within its
    bucket (linearly, as Prometheus' histogram_quantile does); over the last bound: that bound.
    None for no observations."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(bounds):
                return float(bounds[-1])
            low = bounds[index - 1] if index else 0.0
            return low + (bounds[index] - low) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


@dataclass
class Row:
    """What happened to one (job type, queue) in one period: verdicts by their counter name
    (wire/verdicts.py: done, retried, dead, expired...), and two histograms."""

    type: str
    queue: str
    counts: dict[str, int] = field(default_factory=dict)
    run: list[int] = field(default_factory=lambda: [0] * (len(RUN_BUCKETS) + 1))
    wait: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS) + 1))

    def add(self, other: Row) -> None:
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        merged(self.run, other.run)
        merged(self.wait, other.wait)

    @property
    def processed(self) -> int:
        return sum(self.counts.get(name, 0) for name in PROCESSED)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(name, 0) for name in FAILED)

    def as_json(self) -> dict[str, object]:
        return {"type": self.type, "queue": self.queue, "counts": self.counts,
                "run": self.run, "wait": self.wait}  # fmt: skip

    @classmethod
    def of_json(cls, data: dict[str, object]) -> Row:
        run, wait, counts = data["run"], data["wait"], data["counts"]
        if not (isinstance(run, list) and len(run) == len(RUN_BUCKETS) + 1):
            raise ValueError("run histogram of other buckets")
        if not (isinstance(wait, list) and len(wait) == len(WAIT_BUCKETS) + 1):
            raise ValueError("wait histogram of other buckets")
        if not isinstance(counts, dict):
            raise ValueError("counts must be an object")
        return cls(str(data["type"]), str(data["queue"]),
                   {str(k): int(v) for k, v in counts.items()},
                   [int(n) for n in run], [int(n) for n in wait])  # fmt: skip


@dataclass(frozen=True)
class QueueSize:
    queue: str
    size: int  # jobs stored and not yet acknowledged: waiting, scheduled, retrying, in flight
    oldest_seconds: float | None  # how long ago the oldest of them was published


@dataclass(frozen=True)
class Report:
    """One worker's report: what it counted from `minute` (unix minutes) on."""

    worker: str
    minute: int
    rows: tuple[Row, ...]
    queues: tuple[QueueSize, ...] = ()

    def encode(self) -> bytes:
        return json.dumps({
            "v": 1, "worker": self.worker, "minute": self.minute,
            "rows": [row.as_json() for row in self.rows],
            "queues": [[q.queue, q.size, q.oldest_seconds] for q in self.queues],
        }, separators=(",", ":")).encode()  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Report:
        """ValueError for what is no report (of this version)."""
        try:
            found = json.loads(data)
            if found.get("v") != 1:
                raise ValueError("not a version 1 metrics report")
            queues = (QueueSize(str(q), int(n), None if a is None else float(a))
                      for q, n, a in found["queues"])  # fmt: skip
            rows = (Row.of_json(row) for row in found["rows"])
            return cls(str(found["worker"]), int(found["minute"]), tuple(rows), tuple(queues))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a metrics report: {exc}") from None


def summed(rows: Iterable[Row], type_: str, queue: str = "") -> Row:
    """The rows added up under one (type, queue)."""
    total = Row(type_, queue)
    for row in rows:
        total.add(row)
    return total
