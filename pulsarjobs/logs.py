"""Structured logs: one line per job event, as JSON or for a console."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from pulsarjobs.middleware import Middleware, listening_changed
from pulsarjobs.wire.envelope import Envelope, JobError

LogFormat = Literal["console", "json"]

log = structlog.get_logger("pulsarjobs.jobs")

# The level configure_logging set. A process that never called it (a service enqueueing jobs)
# writes no per-job debug lines; and a worker at "warning" builds no fields for "job done".
_threshold = logging.INFO


def writes(level: int) -> bool:
    return level >= _threshold


def configure_logging(format: LogFormat = "console", level: str = "info") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    global _threshold
    _threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_threshold),
        # One write per record (text and newline together): the processes of a group share
        # one pipe, and a record written in two pieces can be split by another's.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    listening_changed()  # the per-job lines may be on or off now


def error_text(exc: BaseException) -> str:
    """An error as a log line tells it: its message, or its type when it has none (a bare
    TimeoutError would otherwise read `error=`)."""
    return str(exc) or type(exc).__name__


def fields(envelope: Envelope) -> dict[str, object]:
    return {
        "job_id": envelope.id,
        "job_type": envelope.type,
        "queue": envelope.queue,
        "attempt": envelope.attempt,
    }


class LoggingMiddleware(Middleware):
    """Writes the job events a person reads when something went wrong."""

    def listens(self, hook: str) -> bool:
        if hook == "after_enqueue":
            return writes(logging.DEBUG)
        return hook != "after_process" or writes(logging.INFO)

    def after_enqueue(self, envelope: Envelope) -> None:
        if not writes(logging.DEBUG):
            return
        log.debug(
            "job enqueued",
            **fields(envelope),
            run_at=envelope.run_at and envelope.run_at.isoformat(),
        )

    def after_process(self, envelope: Envelope, duration: float) -> None:
        if not writes(logging.INFO):
            return
        log.info("job done", **fields(envelope), duration=round(duration, 4))

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        log.warning(
            "job failed",
            **fields(envelope),
            error=error.summary,
            retry_in=None if retry_in is None else round(retry_in, 3),
        )

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        log.error("job dead", **fields(envelope), reason=reason)

    def on_expired(self, envelope: Envelope) -> None:
        log.warning("job expired", **fields(envelope), expires_at=str(envelope.expires_at))
