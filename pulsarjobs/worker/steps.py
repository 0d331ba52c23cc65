"""The features that attach to the pipeline (pipeline.py), each a named step.

A step overrides only the stages it takes part in, and the pipeline calls a step only at those:

- `judge`: before the job runs, a verdict of its own (or None: the job may run);
- `started`: the job is about to run;
- `follow_ups`: what is stored beside the message's replacement, before the acknowledgement;
- `told`: a verdict was given — after the acknowledgement, or as the job waits in place for its
  order (ordered jobs).

What a step does with a verdict is the verdict table's to say (wire/verdicts.py): a step asks
`outcome.kind.policy`, never the verdict by name. The worker's steps, in the order they run at
each stage, are `worker_steps()`; the in-memory TestRunner adds its own recorder after them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, ClassVar, Protocol

from pulsarjobs.app_view import AppView
from pulsarjobs.transport.topics import results_topic
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._flow_control import WorkerFlow
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.crashes import CrashGuard
from pulsarjobs.worker.judge import Judge
from pulsarjobs.worker.metrics import WorkerMetrics
from pulsarjobs.workflows import batches, results
from pulsarjobs.workflows.chains import next_link

NOTHING: tuple[Future[None], ...] = ()


class Step:
    """A feature on the pipeline."""

    name: ClassVar[str]

    def judge(self, envelope: Envelope) -> Outcome | None:
        return None

    def started(self, envelope: Envelope) -> None:
        return None

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        return NOTHING

    def told(self, queue: str, outcome: Outcome) -> None:
        return None

    @classmethod
    def takes_part_in(cls, stage: str) -> bool:
        return getattr(cls, stage) is not getattr(Step, stage)


class AfterCrashes(Step):
    """In a group of processes: a job that was running when a process died runs again a little
    later, beside other jobs, and is dead once it was there too often (crashes.py)."""

    name = "after crashes"

    def __init__(self, judge: Judge, crashes: CrashGuard) -> None:
        self.judge_ = judge
        self.crashes = crashes

    def judge(self, envelope: Envelope) -> Outcome | None:
        crashes = self.crashes.of(envelope.id)
        return None if crashes is None else self.judge_.after_crashes(envelope, crashes)


class Metrics(Step):
    """Prometheus: how long each job waited once due, and each verdict with its run time."""

    name = "metrics"

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def started(self, envelope: Envelope) -> None:
        self.metrics.started(envelope)

    def told(self, queue: str, outcome: Outcome) -> None:
        self.metrics.settled(queue, outcome)


class KeptResults(Step):
    """A job over keeps its result, if it asked to; a chain that stopped keeps the chain's."""

    name = "results"

    def __init__(self, app: AppView, worker: str) -> None:
        self.app = app
        self.worker = worker

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        envelope = outcome.envelope
        if envelope.keep_result is None and envelope.chain is None:
            return NOTHING
        app, now = self.app, self.app.clock()
        kept = results.kept(outcome, now, self.worker, app.settings.max_message_size)
        if not kept:
            return NOTHING
        topic = results_topic(app.settings)
        longest = max(result.expires_at - now for result in kept).total_seconds()
        app.connection.keep_results(topic, longest)  # before its producer: it has a schema
        return [app.connection.publish(topic, kept_.encode(), key=kept_.job_id) for kept_ in kept]


class ChainLinks(Step):
    """A chain link that succeeded enqueues the next, with its value passed on."""

    name = "chains"

    def __init__(self, app: AppView) -> None:
        self.app = app

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        envelope = outcome.envelope
        if envelope.chain is None or not outcome.kind.policy.succeeded:
            return NOTHING
        link = next_link(envelope, outcome.value, self.app.clock())
        return NOTHING if link is None else (self.app.publish_envelope(link),)


class BatchEvents(Step):
    """A job of a batch that is over tells its batch (batch_tracker.py counts it)."""

    name = "batches"

    def __init__(self, app: AppView) -> None:
        self.app = app

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        if outcome.envelope.batch_id is None:
            return NOTHING
        told = batches.told(self.app, outcome)
        return NOTHING if told is None else (told,)


class Counting(Step):
    """The worker's counters (WorkerStats), as heartbeats and its last log line report them."""

    name = "counters"

    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def told(self, queue: str, outcome: Outcome) -> None:
        self.stats.count(outcome.kind)


class KeyKeeper(Protocol):
    def settled(self, outcome: Outcome) -> None: ...  # gives the key back, unless still kept


class UniqueKeysBack(Step):
    """A unique job's key is given back once the job no longer keeps it (after the ack)."""

    name = "unique keys"

    def __init__(self, flow: KeyKeeper) -> None:
        self.flow = flow

    def told(self, queue: str, outcome: Outcome) -> None:
        if outcome.envelope.unique_key is not None:
            self.flow.settled(outcome)


def worker_steps(
    app: AppView,
    worker: str,
    judge: Judge,
    stats: WorkerStats,
    flow: WorkerFlow | None,
    metrics: WorkerMetrics | None = None,
    crashes: CrashGuard | None = None,
) -> list[Step]:
    """A worker's steps, in order. Tracing and users' middleware are hooks around the run
    itself (middleware.py), not steps."""
    steps: list[Step] = []
    if crashes is not None:
        steps.append(AfterCrashes(judge, crashes))
    if metrics is not None:
        steps.append(Metrics(metrics))
    steps += [KeptResults(app, worker), ChainLinks(app), BatchEvents(app), Counting(stats)]
    if flow is not None:
        steps.append(UniqueKeysBack(flow))
    return steps


def at_stage(steps: Sequence[Step], stage: str) -> tuple[Callable[..., Any], ...]:
    """The steps taking part in `stage`, as their bound hooks, in order."""
    return tuple(getattr(step, stage) for step in steps if step.takes_part_in(stage))
