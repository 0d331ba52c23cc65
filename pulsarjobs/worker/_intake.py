"""Taking a fetched message in, on the runner that took it: a second delivery of a settled
message is skipped, and the job is decoded with its writer's schema."""

from __future__ import annotations

from dataclasses import dataclass

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.transport.schema_registry import WriterSchemas
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._queue_feed import QueueFeed
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.settle import Delivery, Settler, delivery_of

log = structlog.get_logger("pulsarjobs.intake")


class SchemaNotCached(Exception):
    """Taking this message in would block: its writer's schema must be looked up first."""


@dataclass(slots=True)
class Ready:
    """A job taken in and ready to run: `job` is its envelope, or the outcome of a message that
    must not run (no job at all)."""

    queue: QueueFeed
    message: pulsar.Message
    delivery: Delivery
    job: Envelope | Outcome


class Intake:
    def __init__(
        self, app: AppView, settler: Settler, schemas: WriterSchemas, stats: WorkerStats
    ) -> None:
        self.app = app
        self.settler = settler
        self.schemas = schemas
        self.stats = stats

    def __call__(
        self, queue: QueueFeed, message: pulsar.Message, may_block: bool = True
    ) -> Ready | None:
        """The job, ready to run; None for a second delivery (acknowledged here). The writer's
        schema is looked up once per topic and version, which blocks: with `may_block` False,
        SchemaNotCached is raised instead, and the message is left as it came."""
        delivery = delivery_of(message)
        if self.settler.seen(delivery):
            self.stats.count_duplicate()
            log.info("second delivery of a settled message skipped", message_id=delivery.message_id)
            queue.consumer.acknowledge(message)
            if queue.ordered:
                queue.done(message)
            return None
        schema = None
        key = WriterSchemas.key(delivery.topic, message.schema_version())
        if key is not None:
            found, schema = self.schemas.cached(key)
            if not found:
                if not may_block:
                    raise SchemaNotCached(key)
                schema = self.schemas.fetch(key)
        return Ready(queue, message, delivery, self.settler.decode(delivery, schema))

    def runs_on_threads(self, ready: Ready) -> bool:
        """Whether the job is a plain `def` one (it runs on a runner thread)."""
        job = ready.job
        declared = self.app.jobs.get(job.type) if isinstance(job, Envelope) else None
        return declared is not None and not declared.is_async


def kinds_of_jobs(app: AppView) -> tuple[bool, bool]:
    """(any async job, any sync job) among the app's jobs."""
    kinds = {job.is_async for job in app.jobs.values()}
    return True in kinds or not kinds, False in kinds
