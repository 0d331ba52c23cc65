"""Taking a fetched message in, on the runner that took it: a second delivery of a settled
message is skipped, and the job is decoded with its writer's schema."""

from __future__ import annotations

from dataclasses import dataclass

import pulsar
import structlog

from pulsarjobs.app import App
from pulsarjobs.envelope import Envelope
from pulsarjobs.execution import Outcome
from pulsarjobs.feed import QueueFeed
from pulsarjobs.schema_registry import WriterSchemas
from pulsarjobs.settle import Delivery, Settler, delivery_of
from pulsarjobs.stats import WorkerStats

log = structlog.get_logger("pulsarjobs.intake")


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
        self, app: App, settler: Settler, schemas: WriterSchemas, stats: WorkerStats
    ) -> None:
        self.app = app
        self.settler = settler
        self.schemas = schemas
        self.stats = stats

    def __call__(self, queue: QueueFeed, message: pulsar.Message) -> Ready | None:
        """The job, ready to run; None for a second delivery (acknowledged here)."""
        delivery = delivery_of(message)
        if self.settler.seen(delivery):
            self.stats.count_duplicate()
            log.info("second delivery of a settled message skipped", message_id=delivery.message_id)
            queue.consumer.acknowledge(message)
            if queue.ordered:
                queue.done(message)
            return None
        job = self.settler.decode(delivery, self.writer_schema(delivery.topic, message))
        return Ready(queue, message, delivery, job)

    def schema_known(self, message: pulsar.Message) -> bool:
        key = WriterSchemas.key(message.topic_name(), message.schema_version())
        return key is None or self.schemas.cached(key)[0]

    def writer_schema(self, topic: str, message: pulsar.Message) -> str | None:
        """Looked up (blocking) once per topic and version."""
        key = WriterSchemas.key(topic, message.schema_version())
        if key is None:
            return None
        found, schema = self.schemas.cached(key)
        return schema if found else self.schemas.fetch(key)

    def runs_on_threads(self, ready: Ready) -> bool:
        """Whether the job is a plain `def` one (it runs on a runner thread)."""
        job = ready.job
        declared = self.app.jobs.get(job.type) if isinstance(job, Envelope) else None
        return declared is not None and not declared.is_async


def kinds_of_jobs(app: App) -> tuple[bool, bool]:
    """(any async job, any sync job) among the app's jobs."""
    kinds = {job.is_async for job in app.jobs.values()}
    return True in kinds or not kinds, False in kinds
