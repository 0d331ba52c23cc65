"""A running worker, seen and steered from outside: heartbeats out, commands in.

The worker starts its Presence once it fetches jobs and stops it at the very end of its
shutdown, which sends a last heartbeat saying "stopped". Heartbeats are sent by a task on the
worker's event loop, so they read its counters without locks — and fall silent when the loop is
blocked, which is then what operators should see. Commands arrive on the Pulsar client's
listener thread and go through the worker's thread-safe `quiet()` and `stop()`. Presence never
keeps a worker from running jobs: when the broker refuses its topics, it logs and stays silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import TYPE_CHECKING

import pulsar
import structlog

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.operations.control import CommandMessage
from pulsarjobs.transport.keeping import keep_compacted
from pulsarjobs.transport.metrics_reports import MetricsWriter
from pulsarjobs.transport.topics import control_topic, workers_topic
from pulsarjobs.wire.heartbeat import (
    Heartbeat,
    WorkerState,
    rss_bytes,
)

if TYPE_CHECKING:
    from pulsarjobs.worker._worker_view import WorkerView

log = structlog.get_logger("pulsarjobs.presence")

SEND_TIMEOUT_SECONDS = 5.0


class Presence:
    def __init__(self, worker: WorkerView) -> None:
        self.worker = worker
        self.settings = worker.settings  # the group it serves, not the app's default
        self.started_at = utc_now()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._producer: pulsar.Producer | None = None
        self._reader: pulsar.Reader | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._metrics: MetricsWriter | None = None  # its counts by job type, each minute

    @classmethod
    async def start(cls, worker: WorkerView) -> Presence:
        presence = cls(worker)
        try:
            await asyncio.to_thread(presence._open)
        except Exception as exc:
            log.warning("heartbeats and worker commands are off", error=error_text(exc))
            await asyncio.to_thread(presence._close)
        else:
            presence._task = asyncio.create_task(presence._beat_forever())
        per_type = worker.stats.per_type  # None only where metrics_interval is 0: no writer
        presence._metrics = await asyncio.to_thread(  # after the first heartbeat is on its way
            MetricsWriter.start, worker.name, worker.settings, worker.app.connection,
            worker.plan.names, tuple if per_type is None else per_type.taken,
        )  # fmt: skip
        return presence

    def beat_soon(self) -> None:
        """Send a heartbeat now rather than at the next interval; callable from any thread."""
        self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Stop beating, say "stopped" (waiting a few seconds at most), close."""
        # Ask the task to end rather than cancel it: on Python 3.11, a cancelled wait_for can
        # swallow the cancellation when its wait ends at the same instant, and never return.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=SEND_TIMEOUT_SECONDS + 1)
            self._task.cancel()  # only matters if it is stuck: the wait is bounded
        if self._producer is not None:
            try:
                await self._send(self.heartbeat("stopped"))
            except Exception as exc:
                log.warning("the last heartbeat was not sent", error=error_text(exc))
        await asyncio.to_thread(self._close)
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)  # its last report

    def heartbeat(self, state: WorkerState | None = None) -> Heartbeat:
        worker, stats = self.worker, self.worker.stats
        return Heartbeat(
            worker=worker.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            subscription=self.settings.subscription,
            queues=worker.plan.names,
            concurrency=worker.concurrency,
            busy=worker.busy,
            processed=stats.processed,
            failed=stats.failed,
            rss_bytes=rss_bytes(),
            state=state or worker.state,
            started_at=self.started_at,
            sent_at=utc_now(),
            interval=self.settings.heartbeat_interval,
            running=worker.running_jobs,
            held_by_limit=worker.held_by_limit,
            ended=worker.ended_jobs,
        )

    # -- inside ------------------------------------------------------------------------------

    def _open(self) -> None:
        topic = workers_topic(self.settings)
        client = self.worker.app.connection.client
        self._producer = client.create_producer(topic, batching_enabled=False)
        keep_compacted(self.settings, topic)  # once it exists
        self._reader = client.create_reader(
            control_topic(self.settings), pulsar.MessageId.latest, reader_listener=self._on_command
        )

    async def _beat_forever(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before sending: a wake-up during the send is not lost
            try:
                await self._send(self.heartbeat())
            except Exception as exc:
                log.warning("heartbeat not sent", error=error_text(exc))
            woken = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait({woken}, timeout=self.settings.heartbeat_interval)
            woken.cancel()

    async def _send(self, beat: Heartbeat) -> None:
        assert self._producer is not None
        stored: asyncio.Future[None] = self._loop.create_future()

        def settle(result: pulsar.Result) -> None:
            if stored.done():
                return
            if result == pulsar.Result.Ok:
                stored.set_result(None)
            else:
                stored.set_exception(PulsarJobsError(f"the broker refused it: {result}"))

        self._producer.send_async(
            beat.encode(),
            lambda result, _id: self._loop.call_soon_threadsafe(settle, result),
            partition_key=beat.worker,
        )
        await asyncio.wait_for(stored, SEND_TIMEOUT_SECONDS)

    def _on_command(self, _reader: pulsar.Reader, message: pulsar.Message) -> None:
        try:
            command = CommandMessage.decode(message.data())
        except ValueError:
            return
        if command.worker != self.worker.name:
            return
        log.info("command received", command=command.command, worker=self.worker.name)
        if command.command == "quiet":
            self.worker.quiet()
        else:
            self.worker.stop()
        self.beat_soon()  # after the command: the worker's loop runs them in this order

    def _close(self) -> None:
        for closable in (self._reader, self._producer):
            if closable is not None:
                with contextlib.suppress(Exception):  # the client may be closing already
                    closable.close()
