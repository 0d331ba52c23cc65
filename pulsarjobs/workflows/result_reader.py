"""Waiting for job results: one Reader per process follows the results topic (results.py) and
hands each result to whoever waits for it.

The Reader starts at the topic's beginning (the topic holds little more than the results not
expired yet) on the first wait, and reads on a thread of its own until the app is closed. A
waiter for a result that arrives later gets it from that thread, as soon as it is read; for
results it passed before anyone waited, the Reader keeps only where each one is (job id ->
message id, about 160 bytes a result), and reads the one asked for again. Waiters ask after
the Reader has read to the end once: a result stored before the question is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import pulsar
import structlog

from pulsarjobs.clock import Clock
from pulsarjobs.errors import ResultTimeout
from pulsarjobs.logs import error_text
from pulsarjobs.transport import access
from pulsarjobs.transport.connection import Connection, client_errors
from pulsarjobs.transport.topics import results_topic
from pulsarjobs.wire.values import JobArg
from pulsarjobs.workflows.results import JobResult

log = structlog.get_logger("pulsarjobs.result_reader")

POLL_MS = 200  # how soon the reading thread notices it should stop
READ_TIMEOUT_MS = 10_000


class ResultReader:
    def __init__(self, connection: Connection, clock: Clock) -> None:
        self.connection = connection
        self.clock = clock
        self.topic = results_topic(connection.settings)
        self._lock = threading.Lock()  # guards the two maps: the reading thread and waiters
        self._waiting: dict[str, list[Future[JobResult]]] = {}
        self._passed: dict[str, bytes] = {}  # job id -> its latest result's message id
        self._read_to_end = threading.Event()
        self._stopped = threading.Event()
        self._reader: pulsar.Reader | None = None
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def wait(self, job_id: str, timeout: float | None) -> JobArg:
        """The job's value once its result is stored (or already is); JobFailed when it
        failed; ResultTimeout after `timeout` seconds (None: no limit)."""
        future = self.ask(job_id)
        try:
            return future.result(timeout).get()
        except FutureTimeout:
            raise no_result(job_id, timeout) from None
        finally:
            self._forget(job_id, future)

    async def wait_async(self, job_id: str, timeout: float | None) -> JobArg:
        if self._thread is None or not self._read_to_end.is_set():
            await asyncio.to_thread(self._start)
        future = self._register(job_id)
        if future is None:
            future = await asyncio.to_thread(self.ask, job_id)
        try:
            async with asyncio.timeout(timeout):
                return (await asyncio.wrap_future(future)).get()
        except TimeoutError:
            raise no_result(job_id, timeout) from None
        finally:
            self._forget(job_id, future)

    def ask(self, job_id: str) -> Future[JobResult]:
        """A future of the job's result (blocks to read the topic to its end the first time,
        and to read a result stored earlier again)."""
        self._start()
        future = self._register(job_id)
        if future is not None:
            return future
        found = self._read_again(job_id)
        if found is not None:
            done: Future[JobResult] = Future()
            done.set_result(found)
            return done
        with self._lock:  # gone: a result stored again later is still waited for
            self._passed.pop(job_id, None)
        return self._register(job_id) or self.ask(job_id)

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        if self._reader is not None:
            with contextlib.suppress(Exception):  # the client may be closed already
                self._reader.close()

    # -- inside ------------------------------------------------------------------------------

    def _register(self, job_id: str) -> Future[JobResult] | None:
        """A future the reading thread completes; None when the result was read already."""
        with self._lock:
            if job_id in self._passed:
                return None
            future: Future[JobResult] = Future()
            self._waiting.setdefault(job_id, []).append(future)
            return future

    def _forget(self, job_id: str, future: Future[JobResult]) -> None:
        with self._lock:
            waiters = self._waiting.get(job_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiting[job_id]

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                if refused := access.nothing_listens(self.connection.settings.service_url):
                    raise refused
                with client_errors(self.connection.settings.service_url, f"reading {self.topic}"):
                    self._reader = self.connection.client.create_reader(
                        self.topic, pulsar.MessageId.earliest
                    )
                self._thread = threading.Thread(
                    target=self._read_forever, name="pulsarjobs-results", daemon=True
                )
                self._thread.start()
        self._read_to_end.wait()

    def _read_forever(self) -> None:
        reader = self._reader
        assert reader is not None
        while not self._stopped.is_set():
            try:
                if not self._read_to_end.is_set() and not reader.has_message_available():
                    self._read_to_end.set()
                    continue
                message = reader.read_next(timeout_millis=POLL_MS)
            except pulsar.Timeout:
                continue
            except pulsar.AlreadyClosed:  # the client was closed (at exit): nothing more comes
                return
            except Exception as exc:  # a lost connection: the client reconnects
                if self._stopped.is_set():
                    return
                log.warning("reading results failed; retrying", error=error_text(exc))
                self._stopped.wait(1.0)
                continue
            self._arrived(message)

    def _arrived(self, message: pulsar.Message) -> None:
        job_id = message.partition_key()
        with self._lock:  # a waiter comes before (and is told here) or after (and reads it)
            self._passed[job_id] = message.message_id().serialize()
            if job_id not in self._waiting:
                return
            result = self._decoded(message)
            if result is None:  # expired, or no result: they wait on
                return
            waiters = self._waiting.pop(job_id)
        for future in waiters:
            with contextlib.suppress(Exception):  # given up already
                future.set_result(result)

    def _decoded(self, message: pulsar.Message) -> JobResult | None:
        """The message's result, unless it expired (or is no result)."""
        try:
            result = JobResult.decode(message.data())
        except ValueError:
            log.warning("not a job result; skipped", topic=self.topic)
            return None
        return result if result.expires_at > self.clock() else None

    def _read_again(self, job_id: str) -> JobResult | None:
        """A result read before anyone waited for it, unless it expired since."""
        with self._lock:
            at = self._passed.get(job_id)
        if at is None:
            return None
        with client_errors(self.connection.settings.service_url, f"reading {self.topic}"):
            reader = self.connection.client.create_reader(
                self.topic, pulsar.MessageId.deserialize(at), start_message_id_inclusive=True
            )
            try:
                message = reader.read_next(timeout_millis=READ_TIMEOUT_MS)
            finally:
                reader.close()
        return self._decoded(message)


def no_result(job_id: str, timeout: float | None) -> ResultTimeout:
    return ResultTimeout(
        f"no result of job {job_id} within {timeout or 0:g} s: it has not settled yet, keeps no "
        "result (declare it with keep_result=), or its result expired"
    )
