"""Taking a fetched message in: a second delivery is skipped, the job is decoded with its
writer's schema, and it goes to the lane of the runners that run its kind — the event loop for
an `async def` job, runner threads for a plain `def` one.

It runs on the queue's fetch thread, a batch at a time, so runners get jobs ready to run and a
job never has to be handed from one kind of runner to the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulsar
import structlog

from pulsarjobs.app import App
from pulsarjobs.envelope import Envelope
from pulsarjobs.execution import Outcome
from pulsarjobs.feed import LOOP_LANE, THREAD_LANE, Lane, Ready
from pulsarjobs.schema_registry import WriterSchemas
from pulsarjobs.settle import Settler, delivery_of
from pulsarjobs.stats import WorkerStats

if TYPE_CHECKING:
    from pulsarjobs.feed import QueueFeed

log = structlog.get_logger("pulsarjobs.intake")


def lanes_for(app: App) -> tuple[Lane, ...]:
    """The lanes an app's jobs need: the loop for async jobs, threads for sync ones."""
    kinds = {job.is_async for job in app.jobs.values()}
    lanes = ([LOOP_LANE] if True in kinds or not kinds else []) + (
        [THREAD_LANE] if False in kinds else []
    )
    return tuple(lanes)


class Intake:
    def __init__(
        self, app: App, settler: Settler, schemas: WriterSchemas, stats: WorkerStats
    ) -> None:
        self.app = app
        self.settler = settler
        self.schemas = schemas
        self.stats = stats
        lanes = lanes_for(app)
        self._async_lane = lanes[0]  # the loop where it runs, else threads
        self._other_lane = lanes[-1]  # sync jobs, and what must not run at all

    def __call__(self, queue: QueueFeed, message: pulsar.Message) -> tuple[Lane, Ready] | None:
        delivery = delivery_of(message)
        if self.settler.seen(delivery):
            self.stats.count_duplicate()
            log.info("second delivery of a settled message skipped", message_id=delivery.message_id)
            queue.consumer.acknowledge(message)
            return None
        job = self.settler.decode(delivery, self._writer_schema(delivery.topic, message))
        return self.lane_of(job), Ready(message, delivery, job)

    def lane_of(self, job: Envelope | Outcome) -> Lane:
        declared = self.app.jobs.get(job.type) if isinstance(job, Envelope) else None
        return self._async_lane if declared is not None and declared.is_async else self._other_lane

    def _writer_schema(self, topic: str, message: pulsar.Message) -> str | None:
        """Looked up (blocking, on this fetch thread) once per topic and version."""
        key = WriterSchemas.key(topic, message.schema_version())
        if key is None:
            return None
        found, schema = self.schemas.cached(key)
        return schema if found else self.schemas.fetch(key)
