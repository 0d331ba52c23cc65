"""What an App offers beyond single jobs: results to wait for, and chains of jobs
(docs/workflows.md). The App inherits it; the work is done in results.py, result_reader.py and
chains.py."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from datetime import timedelta
from typing import TYPE_CHECKING

from pulsarjobs.wire.values import JobArg
from pulsarjobs.workflows.chains import Chained, first_link
from pulsarjobs.workflows.durable_store import BrokerSteps, StepStore
from pulsarjobs.workflows.result_reader import ResultReader
from pulsarjobs.workflows.signals import DEFAULT_SIGNAL_KEEP, SignalBoard

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView
    from pulsarjobs.clock import Clock
    from pulsarjobs.jobs import JobCall
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.connection import Connection
    from pulsarjobs.wire.envelope import Envelope


class Workflows:
    """A mixin of the App: the App gives it these (its chains take the App as an AppView)."""

    connection: Connection
    clock: Clock
    settings: Settings
    _result_reader: ResultReader | None = None  # created on the first wait for a result
    _step_store: StepStore | None = None  # durable jobs' steps; in memory under the TestRunner
    _signals: SignalBoard | None = None  # kept signals, waiting jobs; in memory likewise

    if TYPE_CHECKING:  # the App's (signals send copies of jobs)

        def publish_envelope(
            self, envelope: Envelope, topic: str | None = None
        ) -> Future[None]: ...

    @property
    def result_reader(self) -> ResultReader:
        if self._result_reader is None:
            self._result_reader = ResultReader(self.connection, self.clock)
        return self._result_reader

    @result_reader.setter
    def result_reader(self, reader: ResultReader | None) -> None:
        self._result_reader = reader

    @property
    def step_store(self) -> StepStore:
        """Where durable jobs' completed steps are stored (durable_store.py)."""
        if self._step_store is None:
            self._step_store = BrokerSteps(self)
        return self._step_store

    @step_store.setter
    def step_store(self, store: StepStore | None) -> None:
        self._step_store = store

    @property
    def signals(self) -> SignalBoard:
        """Kept signals and the durable jobs waiting for one (signals.py)."""
        if self._signals is None:
            self._signals = SignalBoard(self)
        return self._signals

    @signals.setter
    def signals(self, board: SignalBoard | None) -> None:
        self._signals = board

    def signal(
        self, key: str, payload: JobArg = None, keep: timedelta = DEFAULT_SIGNAL_KEEP
    ) -> int:
        """Resume every durable job waiting on `key` (`ctx.wait_for`) with `payload`, once each;
        a job that starts waiting on it within `keep` gets it too. Returns once the signal is
        stored, with how many waiting jobs it resumed."""
        return self.signals.send(key, payload, keep)

    async def signal_async(
        self, key: str, payload: JobArg = None, keep: timedelta = DEFAULT_SIGNAL_KEEP
    ) -> int:
        return await asyncio.to_thread(self.signals.send, key, payload, keep)

    def result(self, job_id: str, timeout: float | None = None) -> JobArg:
        """The return value of a job declared (or enqueued) with `keep_result`, once it has
        settled: waits up to `timeout` seconds (None: for as long as it takes). Raises
        JobFailed when it failed for good, ResultTimeout (a TimeoutError) when no result came
        in time."""
        return self.result_reader.wait(job_id, timeout)

    async def result_async(self, job_id: str, timeout: float | None = None) -> JobArg:
        return await self.result_reader.wait_async(job_id, timeout)

    def chain(
        self: AppView,
        *calls: JobCall,
        pass_result: bool = False,
        keep_result: timedelta | None = None,
    ) -> Chained:
        """Run the calls one after the other, each once the one before it succeeded (with
        `pass_result`, receiving its return value as first argument); a link that fails for
        good stops the chain. `keep_result` keeps the last link's result: the chain's.
        Returns once the first link is stored."""
        first, chained = first_link(self, calls, pass_result, keep_result)
        first = self.hooks.before_enqueue(first)
        self.check_reachable([self.queue_topic(first)])
        self.publish_envelope(first).result()
        self.hooks.emit("after_enqueue", first)
        return chained

    async def chain_async(
        self: AppView,
        *calls: JobCall,
        pass_result: bool = False,
        keep_result: timedelta | None = None,
    ) -> Chained:
        first, chained = first_link(self, calls, pass_result, keep_result)
        first = self.hooks.before_enqueue(first)
        topic = self.queue_topic(first)

        def send() -> Future[None]:
            self.check_reachable([topic])
            return self.publish_envelope(first)

        await self.stored_async(send, [topic])
        self.hooks.emit("after_enqueue", first)
        return chained

    def close_workflows(self) -> None:
        if self._signals is not None:
            self._signals.close()
            self._signals = None
        if self._result_reader is not None:
            self._result_reader.close()
            self._result_reader = None
