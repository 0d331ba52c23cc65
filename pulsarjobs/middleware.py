"""Hooks around enqueueing and processing jobs, and around a worker's life, emitted from one
place.

Subclass Middleware and override the hooks you need; pass instances to App(middleware=[...]).
A hook that raises is logged and skipped, except `before_enqueue`, `around_process` and
`before_process`, whose errors stop that enqueue (it raises) or that run (it counts as a failed
run). Which thread each hook runs on is said in docs/concepts.md ("Middleware").
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import structlog

from pulsarjobs.wire.envelope import Envelope, JobError

log = structlog.get_logger("pulsarjobs.middleware")

GUARDING_HOOKS = frozenset({"before_enqueue", "before_process"})
RUN_HOOKS = ("around_process", "before_process", "after_process")
_NOTHING_AROUND = contextlib.nullcontext()


class Middleware:
    def listens(self, hook: str) -> bool:
        """Whether this middleware's `hook` (one it overrides) is to be called now. One whose
        hook does nothing for a while says so here (tracing with no tracer provider set), and
        calls `listening_changed()` when its answer changes: a worker runs a job bare, with
        no per-run hook calls at all, when no middleware listens to `*_process`."""
        return True

    def before_enqueue(self, envelope: Envelope) -> Envelope:
        """May return a changed envelope (e.g. with trace context in `meta`)."""
        return envelope

    def after_enqueue(self, envelope: Envelope) -> None: ...

    def around_process(self, envelope: Envelope) -> ContextManager[None]:
        """A context manager that the run happens inside, hooks and job included: it sees the
        job's exception, if any, and shares the job's thread and contextvars (a span, a
        database session). Write it with `@contextlib.contextmanager`."""
        return _NOTHING_AROUND

    def before_process(self, envelope: Envelope) -> None: ...

    def after_process(self, envelope: Envelope, duration: float) -> None:
        """The run succeeded."""

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        """The run failed; `retry_in` is the delay before the next run, None when none follows."""

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        """The job went to the dead-letter topic."""

    def on_expired(self, envelope: Envelope) -> None:
        """The job was dropped because it was past its `expires_at`."""

    # `worker` is the pulsarjobs.Worker; typed Any so that the hooks, which the worker calls,
    # need not import it, and an override may annotate it as Worker.
    def on_worker_start(self, worker: Any) -> None:
        """The worker is subscribed and about to take jobs."""

    def on_worker_stop(self, worker: Any) -> None:
        """The worker has settled or handed back its last job and is about to close."""


class Hooks:
    """The middleware stack of an App."""

    def __init__(self, middleware: Iterable[Middleware] = ()) -> None:
        self.stack = list(middleware)  # changed through add and remove
        self._listeners: dict[str, list[Callable[..., Any]]] = {}
        self.runs_bare = False  # no middleware listens to a run's hooks: the job runs alone
        self.changed()
        _every.add(self)

    def add(self, middleware: Middleware) -> None:
        self.stack.append(middleware)
        self.changed()

    def remove(self, middleware: Middleware) -> None:
        self.stack.remove(middleware)
        self.changed()

    def changed(self) -> None:
        """Middleware came, went, or listens to other hooks now: look the listeners up again."""
        self._listeners.clear()
        self.runs_bare = not any(self.listeners(hook) for hook in RUN_HOOKS)

    def before_enqueue(self, envelope: Envelope) -> Envelope:
        for middleware in self.stack:
            envelope = middleware.before_enqueue(envelope)
        return envelope

    def around_process(self, envelope: Envelope) -> ContextManager[None]:
        """Every middleware's `around_process`, the first outermost."""
        arounds = self._listeners.get("around_process")  # per job: found before, no second call
        if arounds is None:
            arounds = self.listeners("around_process")
        if not arounds:
            return _NOTHING_AROUND
        if len(arounds) == 1:
            around: ContextManager[None] = arounds[0](envelope)
            return around
        return _nested(arounds, envelope)

    def emit(self, hook: str, *args: Any) -> None:
        listeners = self._listeners.get(hook)  # per job, twice: found before, no second call
        for listener in self.listeners(hook) if listeners is None else listeners:
            try:
                listener(*args)
            except Exception:
                if hook in GUARDING_HOOKS:
                    raise
                owner = type(getattr(listener, "__self__", listener)).__name__
                log.exception("middleware hook failed", hook=hook, middleware=owner)

    def listeners(self, hook: str) -> list[Callable[..., Any]]:
        """The middleware that override `hook` and listen to it: a hook nobody overrides costs
        nothing per job."""
        found = self._listeners.get(hook)
        if found is None:
            inherited = getattr(Middleware, hook)
            found = [
                getattr(middleware, hook)
                for middleware in self.stack
                if getattr(type(middleware), hook, inherited) is not inherited
                and middleware.listens(hook)
            ]
            self._listeners[hook] = found
        return found


_every: weakref.WeakSet[Hooks] = weakref.WeakSet()  # the hooks of every App in the process


def listening_changed() -> None:
    """A middleware's `listens` answer changed: every App looks its listeners up again."""
    for hooks in list(_every):
        hooks.changed()


@contextlib.contextmanager
def _nested(arounds: list[Callable[..., Any]], envelope: Envelope) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for around in arounds:
            stack.enter_context(around(envelope))
        yield
