"""A declared job, and a call of it ready to enqueue with its per-call options."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypedDict, TypeVar

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.grouping.options import GroupOptions
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.snooze import DEFAULT_MAX_SNOOZES
from pulsarjobs.transport.topics import check_queue_name
from pulsarjobs.wire.argtypes import ArgumentTypes
from pulsarjobs.wire.envelope import JobArg

DEFAULT_QUEUE = "default"  # of a job declared without one, and of a call to an undeclared job
FITS_REMEMBERED = 64  # argument shapes a job remembers as fitting (a `**kwargs` job has many)

P = ParamSpec("P")
R = TypeVar("R")

MAX_FAIR_WEIGHT = 1000  # a turn of this many jobs already holds every other lane back that long
FairKeyOf = Callable[..., str]  # a job's fair key, from the arguments it is enqueued with
FairWeightOf = Callable[..., int]

# What enqueueing a unique job whose key is held does: return the holder's id, or raise
# DuplicateJob (which names it).
IfDuplicate = Literal["id", "raise"]
Keep = Literal["first", "last"]  # which call's arguments a debounced run takes
SHORTEST_DEBOUNCE = timedelta(seconds=1)  # the broker delivers scheduled jobs by the second


@dataclass(frozen=True, slots=True)
class JobCall:
    """A job ready to enqueue: its type, arguments and per-call options."""

    type: str
    args: tuple[JobArg, ...] = ()
    kwargs: Mapping[str, JobArg] = field(default_factory=dict)
    queue: str | None = None  # None: the job's declared queue
    job_id: str | None = None  # None: a fresh id; give one to make enqueue idempotent downstream
    retry: RetryPolicy | None = None
    timeout: float | None = None
    expires_in: timedelta | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    unique_key: str | None = None  # None: type + arguments, if the job is declared unique
    if_duplicate: IfDuplicate = "id"
    order_key: str | None = None  # jobs of one key run one at a time, in enqueue order
    limit_key: str | None = None  # None: the job's type, if it has a concurrency limit
    batch_id: str | None = None  # set by Batch.enqueue (batches.py)
    keep_result: timedelta | None = None  # None: as the job is declared (results.py)
    debounce_key: str | None = None  # None: the job's type, if it is declared with debounce=
    fair_key: str | None = None  # None: as declared; takes turns with other keys (fairness.py)
    fair_weight: int | None = None  # None: as declared, else 1

    def with_options(self, **options: Any) -> JobCall:
        return replace(self, **options)


@dataclass(frozen=True, slots=True)
class Debounce:
    """`@app.job(debounce=Debounce(timedelta(seconds=30), timeout=timedelta(minutes=5)))`: calls
    of a key make one run, `period` after the last one, at most `timeout` after the first
    (None: no bound), with the `keep`="last" (or "first") call's arguments."""

    period: timedelta
    timeout: timedelta | None = None
    keep: Keep = "last"

    def __post_init__(self) -> None:
        if self.period < SHORTEST_DEBOUNCE:
            raise ConfigurationError(f"debounce period must be at least 1 s, got {self.period}")
        if self.timeout is not None and self.timeout < self.period:
            raise ConfigurationError(
                f"debounce timeout must be at least its period ({self.period}), got {self.timeout}"
            )
        if self.keep not in ("first", "last"):
            raise ConfigurationError(f'debounce keep must be "first" or "last", got {self.keep!r}')

    @classmethod
    def of(cls, option: Debounce | timedelta | None) -> Debounce | None:
        """What `debounce=` declares: a Debounce, or a period alone."""
        return cls(option) if isinstance(option, timedelta) else option


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """What a job declares of flow control (docs/flow-control.md)."""

    unique_for: timedelta | None = None  # enqueues of one key make one job while it is held
    concurrency_limit: int | None = None  # at most this many run at once, cluster-wide
    rate_limit: int | None = None  # at most this many start a second, cluster-wide
    debounce: Debounce | None = None  # calls of a key make one run (flow/debounce.py)

    @property
    def limited(self) -> bool:
        return self.concurrency_limit is not None or self.rate_limit is not None

    def __post_init__(self) -> None:
        if self.unique_for is not None and self.unique_for <= timedelta(0):
            raise ConfigurationError(f"unique_for must be positive, got {self.unique_for}")
        for name in ("concurrency_limit", "rate_limit"):
            if (value := getattr(self, name)) is not None and value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        if self.debounce is not None and self.unique_for is not None:
            raise ConfigurationError("debounce= and unique_for= do not combine: choose one")


@dataclass(frozen=True, slots=True)
class FairKey:
    """What `@app.job(fair_key=..., fair_weight=...)` declares: each a value or a function of
    the job's arguments."""

    key: str | FairKeyOf
    weight: int | FairWeightOf = 1

    def __post_init__(self) -> None:
        if not callable(self.key):
            check_key(self.key)
        if not callable(self.weight):
            check_weight(self.weight)

    @classmethod
    def declared(
        cls, key: str | FairKeyOf | None, weight: int | FairWeightOf | None
    ) -> FairKey | None:
        if key is None:
            if weight is not None:
                raise ConfigurationError("fair_weight needs a fair_key")
            return None
        return cls(key, 1 if weight is None else weight)

    def of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, int]:
        key = self.key(*args, **kwargs) if callable(self.key) else self.key
        weight = self.weight(*args, **kwargs) if callable(self.weight) else self.weight
        return check_key(key), check_weight(weight)


def check_weight(weight: object) -> int:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int)
        or not 1 <= weight <= MAX_FAIR_WEIGHT
    ):
        raise ConfigurationError(
            f"fair_weight must be a whole number from 1 to {MAX_FAIR_WEIGHT}, got {weight!r}"
        )
    return weight


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"fair_key must be a non-empty string, got {key!r}")
    return key


class JobOptions(TypedDict, total=False):
    """What `@app.job(...)` takes, each optional; None is the same as leaving it out."""

    name: str | None  # None: the function's name
    queue: str  # default: DEFAULT_QUEUE
    max_attempts: int | None  # None: the retry policy's
    retry: RetryPolicy | None  # None: RetryPolicy() (retry.py)
    timeout: float | None  # seconds a run may take; None: no limit
    unique_for: timedelta | None  # FlowOptions' three (docs/flow-control.md)
    concurrency_limit: int | None
    rate_limit: int | None
    max_snoozes: int  # runs that raise Snooze beyond this are dead-lettered (docs/concepts.md)
    keep_result: timedelta | None  # how long its result is kept (docs/workflows.md)
    debounce: Debounce | timedelta | None  # calls of a key make one run (docs/flow-control.md)
    group: GroupOptions | None  # its runs take a list of members (docs/flow-control.md)
    fair_key: str | FairKeyOf | None  # its jobs take turns by this key (docs/flow-control.md)
    fair_weight: int | FairWeightOf | None  # None: 1


def check_options(options: Mapping[str, object]) -> None:
    """A mistyped option fails where the job is declared, as a plain keyword argument would."""
    if unknown := sorted(set(options) - set(JobOptions.__annotations__)):
        raise TypeError(f"app.job() got unexpected options {unknown}; "
                        f"it takes {sorted(JobOptions.__annotations__)}")  # fmt: skip


class Job(Generic[P, R]):
    """A declared job: call it to run it here, `.enqueue(...)` to have a worker run it."""

    def __init__(
        self,
        app: Enqueuer,
        func: Callable[P, R],
        name: str,
        queue: str,
        retry: RetryPolicy,
        timeout: float | None,
        flow: FlowOptions = FlowOptions(),
        max_snoozes: int = DEFAULT_MAX_SNOOZES,
        keep_result: timedelta | None = None,
        durable: bool = False,
        fair: FairKey | None = None,
    ) -> None:
        if max_snoozes < 0:
            raise ConfigurationError(f"max_snoozes must be >= 0, got {max_snoozes}")
        if keep_result is not None and keep_result <= timedelta(0):
            raise ConfigurationError(f"keep_result must be positive, got {keep_result}")
        self.app = app
        self.handler = func  # the function declared; `func` is what a worker calls
        self.func: Callable[..., Any] = func  # a durable job's: its context passed first
        self.name = name
        self.queue = check_queue_name(queue)
        self.retry = retry
        self.timeout = timeout
        self.flow = flow
        self.max_snoozes = max_snoozes  # runs that raise Snooze beyond this are dead-lettered
        self.keep_result = keep_result  # how long its result is kept once it settled
        self.fair = fair  # its jobs' fair key and weight, if it declares one
        self.is_async = inspect.iscoroutinefunction(func)
        self.durable = durable  # its first parameter is its context, which callers do not pass
        self.signature = inspect.signature(func)
        if durable:
            self.signature = without_context(self.signature, name)
        # Shapes that fit (see below), of a job whose arguments' types are not checked, and of
        # one whose are: only the first kind returns at once.
        self._fitting: set[tuple[int, tuple[str, ...]]] = set()
        self._fitting_checked: set[tuple[int, tuple[str, ...]]] = set()
        # The checks of its plain annotations; None: none, and checking types costs nothing.
        self.types: ArgumentTypes | UnresolvedTypes | None = UnresolvedTypes(self)

    @classmethod
    def declared(
        cls, app: Enqueuer, func: Callable[..., Any], options: JobOptions, durable: bool
    ) -> Job[Any, Any]:
        """The job `@app.job(**options)` declares of `func`."""
        policy = options.get("retry") or RetryPolicy()
        if (max_attempts := options.get("max_attempts")) is not None:
            policy = replace(policy, max_attempts=max_attempts)
        flow = FlowOptions(options.get("unique_for"), options.get("concurrency_limit"),
                           options.get("rate_limit"))  # fmt: skip
        if (debounce := Debounce.of(options.get("debounce"))) is not None:
            if durable:
                raise ConfigurationError("a durable job cannot be debounced")
            flow = replace(flow, debounce=debounce)
        return cls(app, func, options.get("name") or func.__name__,
                   options.get("queue", DEFAULT_QUEUE), policy, options.get("timeout"), flow,
                   options.get("max_snoozes", DEFAULT_MAX_SNOOZES), options.get("keep_result"),
                   durable, FairKey.declared(options.get("fair_key"),
                                             options.get("fair_weight")))  # fmt: skip

    def check_arguments(self, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """Raise TypeError when the arguments do not fit the signature, or one is not of its
        plain annotation's type (wire/argtypes.py). Whether they fit the signature depends on
        their number and keyword names only, never on their values: a shape that fits is
        remembered (binding costs a sync job more than the rest of its run's checks), and a
        job with no type to check costs no more than that."""
        shape = (len(args), tuple(kwargs))
        if shape in self._fitting:
            return
        if shape not in self._fitting_checked:
            self.signature.bind(*args, **kwargs)
            fitting = self._fitting if self.resolved_types() is None else self._fitting_checked
            if len(fitting) < FITS_REMEMBERED:
                fitting.add(shape)
        if (types := self.types) is not None:
            types.check(args, kwargs)

    def resolved_types(self) -> ArgumentTypes | None:
        """The checks of its parameters' plain annotations (None if it has none), resolved
        once, at the first check: names its module defines after the job exist by then."""
        if isinstance(self.types, UnresolvedTypes):
            self.types = ArgumentTypes.of(self.handler, self.signature)
        return self.types

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.durable:
            raise TypeError(f"durable job {self.name!r} runs on a worker (or a TestRunner)")
        return self.handler(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Job {self.name} queue={self.queue}>"

    def call(self, *args: P.args, **kwargs: P.kwargs) -> JobCall:
        return JobCall(self.name, args=tuple(args), kwargs=dict(kwargs))  # type: ignore[arg-type]

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue to run as soon as a worker is free; returns the job id once the broker has it."""
        return self.app.enqueue(self.call(*args, **kwargs))

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> str:
        return await self.app.enqueue_async(self.call(*args, **kwargs))


def without_context(signature: inspect.Signature, name: str) -> inspect.Signature:
    """A durable job's signature as callers see it: without its first parameter, its context."""
    parameters = list(signature.parameters.values())
    first = parameters[0].kind if parameters else None  # a parameter's kind: no verdict
    if first not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ConfigurationError(
            f"durable job {name!r} must take its context as its first parameter: "
            "`def job(ctx: Durable, ...)`"
        )
    return signature.replace(parameters=parameters[1:])


class UnresolvedTypes:
    """A job's type checks before their first use, which resolves them."""

    def __init__(self, job: Job[Any, Any]) -> None:
        self.job = job

    def check(self, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        types = self.job.resolved_types()
        if types is not None:
            types.check(args, kwargs)


class Enqueuer(Protocol):
    """What a job enqueues its calls through: its App."""

    def enqueue(self, call: JobCall) -> str: ...

    async def enqueue_async(self, call: JobCall) -> str: ...


class JobDecorator(Protocol):
    def __call__(self, func: Callable[P, R], /) -> Job[P, R]: ...


class DurableDecorator(Protocol):
    """A durable job is enqueued without its first parameter, its context."""

    def __call__(self, func: Callable[Concatenate[Any, P], R], /) -> Job[P, R]: ...


def declared_job(jobs: Mapping[str, Job[Any, Any]], job: Job[Any, Any] | str) -> Job[Any, Any]:
    """The job of that name (or that job) among an App's `jobs`; ConfigurationError if none."""
    name = job if isinstance(job, str) else job.name
    if name not in jobs:
        raise ConfigurationError(f"no job named {name!r} is declared in this app")
    return jobs[name]
