"""What a running worker follows besides its jobs: paused queues and cancelled jobs (marks).

Started before the feed fetches, so that a worker started while a queue is paused never takes
its jobs and knows every cancel; stopped with the worker. Marks set later arrive on the Pulsar
client's listener thread and take effect at once: a pause flags the queue in the feed, a cancel
goes to the worker's running jobs (_running.py).
"""

from __future__ import annotations

import contextlib

import structlog

from pulsarjobs.logs import error_text
from pulsarjobs.operations.cancels import Cancel
from pulsarjobs.transport.connection import Closable, Connection, OnMark
from pulsarjobs.transport.topics import cancelled_topic, paused_topic
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker.feed import Feed

log = structlog.get_logger("pulsarjobs.following")


class Following:
    def __init__(self, feed: Feed, running: CurrentRuns) -> None:
        self.feed = feed
        self.running = running
        self._served = set(feed.plan.names)
        self._views: list[Closable] = []

    @classmethod
    def start(
        cls, connection: Connection, feed: Feed, running: CurrentRuns, pauses: bool = True
    ) -> Following:
        """Read every mark and follow the new ones (blocks: call it off the event loop); the
        cancels only, without `pauses`."""
        following = cls(feed, running)
        settings = connection.settings
        followed: list[tuple[str, OnMark]] = [(cancelled_topic(settings), following._on_cancel)]
        if pauses:
            followed.insert(0, (paused_topic(settings), following._on_pause))
        try:
            for topic, on_mark in followed:
                following._views.append(connection.follow_marks(topic, on_mark))
        except Exception as exc:
            log.warning("paused queues and cancelled jobs are not followed", error=error_text(exc))
        return following

    def stop(self) -> None:
        for view in self._views:
            with contextlib.suppress(Exception):  # the client may be closing already
                view.close()

    def _on_pause(self, queue: str, data: bytes) -> None:
        if queue in self._served:
            log.info("queue paused" if data else "queue resumed", queue=queue)
            self.feed.set_paused(queue, bool(data))

    def _on_cancel(self, job_id: str, data: bytes) -> None:
        if not data:
            self.running.forget(job_id)
            return
        try:
            mark = Cancel.decode(data)
        except ValueError:
            return  # not ours: someone else wrote to the topic
        self.running.cancel(job_id, mark.cancelled_at)
