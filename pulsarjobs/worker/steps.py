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
from concurrent.futures import Future, ThreadPoolExecutor
from operator import attrgetter
from typing import Any, ClassVar, Protocol

from pulsarjobs.app_view import AppView
from pulsarjobs.transport.job_index import IndexedSettles
from pulsarjobs.transport.topics import results_topic
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker._flow_control import WorkerFlow
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.crashes import Crashes
from pulsarjobs.worker.judge import Judge
from pulsarjobs.worker.metrics import WorkerMetrics
from pulsarjobs.workflows import batches, results
from pulsarjobs.workflows.chains import next_link
from pulsarjobs.workflows.signals import CHILD_KEEP, PARENT_META, child_key, child_outcome

NOTHING: tuple[Future[None], ...] = ()


class Named(Protocol):
    """Anything with a name and some of Step's hooks is a step (WorkerStats counts at `told`)."""

    name: ClassVar[str]


class Step:
    """A feature on the pipeline: it defines the hooks of the stages it takes part in."""

    name: ClassVar[str]
    # The envelope fields it is about: at `judge`, `follow_ups` and `told`, it is called only for
    # the jobs that set one of them (most jobs set none: one look skips them all). (): every job.
    concerns: ClassVar[tuple[str, ...]] = ()

    def judge(self, envelope: Envelope) -> Outcome | None:
        return None

    def started(self, envelope: Envelope) -> None:
        return None

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        return NOTHING

    def told(self, queue: str, outcome: Outcome) -> None:
        return None


class CrashCounts(Protocol):
    """How often a job was running when a process died (crashes.py; in memory under the
    TestRunner)."""

    def of(self, job_id: str) -> Crashes | None: ...


class AfterCrashes(Step):
    """In a group of processes: a job that was running when a process died runs again a little
    later, beside other jobs, and is dead once it was there too often (crashes.py)."""

    name = "after crashes"

    def __init__(self, judge: Judge, crashes: CrashCounts) -> None:
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
    concerns = ("keep_result", "chain")

    def __init__(self, app: AppView, worker: str) -> None:
        self.app = app
        self.worker = worker

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        envelope = outcome.envelope
        if envelope.keep_result is None and envelope.chain is None:
            return NOTHING
        app, now = self.app, self.app.clock()
        kept = results.kept(outcome, now, self.worker, app.settings.max_payload)
        if not kept:
            return NOTHING
        topic = results_topic(app.settings)
        longest = max(result.expires_at - now for result in kept).total_seconds()
        app.connection.keep_results(topic, longest)  # before its producer: it has a schema
        return [app.connection.publish(topic, kept_.encode(), key=kept_.job_id) for kept_ in kept]


class ChainLinks(Step):
    """A chain link that succeeded enqueues the next, with its value passed on."""

    name = "chains"
    concerns = ("chain",)

    def __init__(self, app: AppView) -> None:
        self.app = app

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        envelope = outcome.envelope
        if envelope.chain is None or not outcome.kind.policy.succeeded:
            return NOTHING
        link = next_link(envelope, outcome.value)
        return NOTHING if link is None else (self.app.publish_envelope(link),)


class BatchEvents(Step):
    """A job of a batch that is over tells its batch (batch_tracker.py counts it)."""

    name = "batches"
    concerns = ("batch_id",)

    def __init__(self, app: AppView) -> None:
        self.app = app

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        if outcome.envelope.batch_id is None:
            return NOTHING
        told = batches.told(self.app, outcome)
        return NOTHING if told is None else (told,)


class DurableParents(Step):
    """A child of a durable job (`ctx.child`) that is over resumes its parent with its value or
    its failure before it is acknowledged: a signal, sent from a thread of its own as it waits
    for locks and the broker (workflows/signals.py)."""

    name = "durable parents"
    concerns = ("keep_result",)  # a child keeps its result: jobs that keep none are not looked at

    def __init__(self, app: AppView) -> None:
        self.app = app
        self._sending: ThreadPoolExecutor | None = None

    def follow_ups(self, outcome: Outcome) -> Sequence[Future[None]]:
        envelope = outcome.envelope
        if PARENT_META not in envelope.meta or not outcome.kind.policy.over:
            return NOTHING
        if self._sending is None:
            self._sending = ThreadPoolExecutor(2, thread_name_prefix="pulsarjobs-parents")
        told = child_outcome(outcome, self.app.clock())
        return (self._sending.submit(self._tell, child_key(envelope.id), told),)

    def _tell(self, key: str, told: dict[str, Any]) -> None:
        self.app.signals.send(key, told, CHILD_KEEP)


class KeyKeeper(Protocol):
    def settled(self, outcome: Outcome) -> None: ...  # gives the key back, unless still kept


class UniqueKeysBack(Step):
    """A unique job's key is given back once the job no longer keeps it (after the ack)."""

    name = "unique keys"
    concerns = ("unique_key",)

    def __init__(self, flow: KeyKeeper) -> None:
        self.flow = flow

    def told(self, queue: str, outcome: Outcome) -> None:
        if outcome.envelope.unique_key is not None:
            self.flow.settled(outcome)


class Debounced(Step):
    """A debounced job that a later call of its key superseded is acknowledged unrun: that
    call's job does the work (flow/debounce.py). One that runs closes its key's window."""

    name = "debounce"
    concerns = ("debounce_key",)

    def __init__(self, app: AppView) -> None:
        self.app = app

    def judge(self, envelope: Envelope) -> Outcome | None:
        if (
            envelope.debounce_key is None
            or (later := self.app.debounces.superseded_by(envelope)) is None
        ):
            return None
        return Outcome(Verdict.GROUPED, envelope, f"superseded by {later}")

    def told(self, queue: str, outcome: Outcome) -> None:
        policy = outcome.kind.policy
        if outcome.envelope.debounce_key is not None and policy.over and not policy.succeeded:
            self.app.debounces.settled(outcome.envelope)  # cancelled, expired: window closes


def worker_steps(
    app: AppView,
    worker: str,
    judge: Judge,
    stats: WorkerStats,
    flow: WorkerFlow | None,
    metrics: WorkerMetrics | None = None,
    crashes: CrashCounts | None = None,
    debounced: bool | None = None,
    indexed: bool | None = None,
) -> list[Named]:
    """A worker's steps, in order. Tracing and users' middleware are hooks around the run
    itself (middleware.py), not steps. `debounced`: whether jobs may be debounced (None: if the
    app declares a debounced job; its other jobs then pay nothing for it). `indexed`: whether
    settles go to the job index (None: if the app's index writes; the TestRunner's never)."""
    steps: list[Named] = []
    if crashes is not None:
        steps.append(AfterCrashes(judge, crashes))
    if metrics is not None:
        steps.append(Metrics(metrics))
    steps += [KeptResults(app, worker), ChainLinks(app), BatchEvents(app), DurableParents(app)]
    steps.append(stats)  # by job type too, for the Metrics page (type_metrics.py)
    if app.job_index.writes() if indexed is None else indexed:  # else its jobs pay nothing
        steps.append(IndexedSettles(app.job_index))
    if debounced is None:
        debounced = any(job.flow.debounce for job in app.jobs.values())
    if debounced:
        steps.append(Debounced(app))
    if flow is not None:
        steps.append(UniqueKeysBack(flow))
    return steps


class Stage:
    """A stage's hooks: `every` job's, in order, then the `concerned` steps' — for a job that
    sets one of their fields, which `asked(envelope) != unset` says in one look."""

    __slots__ = ("asked", "concerned", "every", "unset")

    def __init__(self, steps: Sequence[Named], stage: str) -> None:
        taking_part = [step for step in steps if takes_part(step, stage)]
        every = [step for step in taking_part if not concerns(step)]
        self.every = tuple(getattr(step, stage) for step in every)
        self.concerned = tuple(getattr(step, stage) for step in taking_part if concerns(step))
        fields = sorted({field for step in taking_part for field in concerns(step)})
        self.asked = attrgetter(*fields) if fields else attrgetter("__class__")
        # attrgetter gives a tuple for several fields, the value itself for one
        self.unset: object = (None,) * len(fields) if len(fields) > 1 else None


def judges(steps: Sequence[Named]) -> tuple[Callable[[Envelope], Outcome | None], ...]:
    """The steps' judges, in order: every job's, then one that asks the concerned steps' of a
    job that sets one of their fields only."""
    stage = Stage(steps, "judge")
    if not stage.concerned:
        return stage.every
    asked, unset = stage.asked, stage.unset
    concerned: tuple[Callable[[Envelope], Outcome | None], ...] = stage.concerned

    def judge_concerned(envelope: Envelope) -> Outcome | None:
        if asked(envelope) == unset:
            return None
        for judge in concerned:
            if (verdict := judge(envelope)) is not None:
                return verdict
        return None

    return (*stage.every, judge_concerned)


def takes_part(step: Named, stage: str) -> bool:
    """Whether the step defines its own hook for `stage` (a Step's defaults do nothing)."""
    hook = getattr(type(step), stage, None)
    return hook is not None and hook is not getattr(Step, stage)


def concerns(step: Named) -> tuple[str, ...]:
    return getattr(step, "concerns", ())
