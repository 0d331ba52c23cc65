"""Hooks around enqueueing and processing jobs, emitted from one place.

Subclass Middleware and override the hooks you need; pass instances to App(middleware=[...]).
A hook that raises is logged and skipped, except `before_enqueue` and `before_process`, whose
errors stop that enqueue (it raises) or that run (it counts as a failed run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from pulsarjobs.envelope import Envelope, JobError

log = structlog.get_logger("pulsarjobs.middleware")

GUARDING_HOOKS = frozenset({"before_enqueue", "before_process"})


class Middleware:
    def before_enqueue(self, envelope: Envelope) -> Envelope:
        """May return a changed envelope (e.g. with trace context in `meta`)."""
        return envelope

    def after_enqueue(self, envelope: Envelope) -> None: ...

    def before_process(self, envelope: Envelope) -> None: ...

    def after_process(self, envelope: Envelope, duration: float) -> None:
        """The run succeeded."""

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        """The run failed; `retry_in` is the delay before the next run, None when none follows."""

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        """The job went to the dead-letter topic."""

    def on_expired(self, envelope: Envelope) -> None:
        """The job was dropped because it was past its `expires_at`."""


class Hooks:
    """The middleware stack of an App."""

    def __init__(self, middleware: Iterable[Middleware] = ()) -> None:
        self.stack = list(middleware)
        self._listeners: dict[str, list[Callable[..., Any]]] = {}

    def add(self, middleware: Middleware) -> None:
        self.stack.append(middleware)
        self._listeners.clear()

    def remove(self, middleware: Middleware) -> None:
        self.stack.remove(middleware)
        self._listeners.clear()

    def before_enqueue(self, envelope: Envelope) -> Envelope:
        for middleware in self.stack:
            envelope = middleware.before_enqueue(envelope)
        return envelope

    def emit(self, hook: str, *args: Any) -> None:
        for listener in self.listeners(hook):
            try:
                listener(*args)
            except Exception:
                if hook in GUARDING_HOOKS:
                    raise
                owner = type(getattr(listener, "__self__", listener)).__name__
                log.exception("middleware hook failed", hook=hook, middleware=owner)

    def listeners(self, hook: str) -> list[Callable[..., Any]]:
        """The middleware that override `hook`: a hook nobody overrides costs nothing per job."""
        found = self._listeners.get(hook)
        if found is None:
            inherited = getattr(Middleware, hook)
            found = [
                getattr(middleware, hook)
                for middleware in self.stack
                if getattr(type(middleware), hook, inherited) is not inherited
            ]
            self._listeners[hook] = found
        return found
