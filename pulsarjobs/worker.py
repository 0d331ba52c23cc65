"""The worker: fetch jobs from priority queues, run them, settle each with the broker.

`concurrency` runner tasks on one event loop each take the next job by priority and run it. The
client library holds up to `prefetch` jobs per queue; while it has some, a runner takes them
straight from it, as a bare receive loop would. When it runs out, a thread per queue waits in
`receive` and hands the next job over (a doorbell for idle runners), and tells when a queue has
stayed empty. A job is acknowledged only after whatever replaces it (its retry, its dead
letter) is stored by the broker: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pulsar
import structlog

from pulsarjobs.app import App
from pulsarjobs.clock import utc_now
from pulsarjobs.envelope import Envelope, EnvelopeError, JobError, decode, encode, pulsar_schema
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.execution import Executor, Outcome
from pulsarjobs.heartbeat import WorkerState
from pulsarjobs.presence import Presence
from pulsarjobs.schema_registry import WriterSchemas
from pulsarjobs.topics import DEAD_LETTER_SUBSCRIPTION, QueueTopics, check_queue_name, topics_for

log = structlog.get_logger("pulsarjobs.worker")

RECEIVE_POLL_MS = 50  # how long a queue stays silent before it counts as empty
MIN_PREFETCH = 32  # the default prefetch is 4 x concurrency (Celery's rule), at least this
FLOWING_GAP_S = 0.001  # jobs arriving closer than this come in batches
RUNNER_TURN_S = 0.01  # a runner whose jobs never wait yields to the loop this often
NACK_DELAY_MS = 100  # a handed-back job is redelivered at once
CRASH_REDELIVERIES = 10  # deliveries without a verdict (worker crashes) before dead-lettering
# Runs remembered as settled: the broker may deliver a message twice (at least once), and
# a run this worker already settled needs no second execution.
RECENTLY_SETTLED = 10_000

Run = tuple[str, int]  # (job id, attempt)


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """Which queues a worker serves and how it chooses between them."""

    names: tuple[str, ...]
    weights: tuple[int, ...]
    strict: bool

    @classmethod
    def parse(cls, spec: str | Sequence[str]) -> QueuePlan:
        """`critical,default,low`: strict order; `critical:6,default:3,low:1`: weighted."""
        items = [item.strip() for item in (spec.split(",") if isinstance(spec, str) else spec)]
        items = [item for item in items if item]
        if not items:
            raise ConfigurationError("give at least one queue, e.g. --queues default")
        weighted = [":" in item for item in items]
        if any(weighted) and not all(weighted):
            raise ConfigurationError(
                f"queues {','.join(items)!r}: give a weight to every queue or to none"
            )
        names, weights = [], []
        for item in items:
            name, _, weight = item.partition(":")
            names.append(check_queue_name(name))
            weights.append(parse_weight(item, weight) if weight else 1)
        if len(set(names)) != len(names):
            raise ConfigurationError(f"queues {','.join(items)!r}: a queue is named twice")
        return cls(tuple(names), tuple(weights), strict=not any(weighted))


def parse_weight(item: str, weight: str) -> int:
    if not weight.isdigit() or int(weight) < 1:
        raise ConfigurationError(f"queue {item!r}: the weight must be a whole number >= 1")
    return int(weight)


class Worker:
    def __init__(
        self,
        app: App,
        queues: str | Sequence[str] = "default",
        *,
        concurrency: int = 10,
        prefetch: int | None = None,
        shutdown_timeout: float = 25.0,
        subscription: str | None = None,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
        if subscription:  # this process serves one consumer group
            app.settings = app.settings.with_changes(subscription=subscription)
        self.app = app
        self.plan = QueuePlan.parse(queues)
        self.concurrency = concurrency
        self.prefetch = prefetch or max(4 * concurrency, MIN_PREFETCH)
        self.shutdown_timeout = shutdown_timeout
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stats: Counter[str] = Counter()
        self.topics = {queue: topics_for(app.settings, queue) for queue in self.plan.names}
        self._settled: OrderedDict[Run, None] = OrderedDict()
        self._schemas = WriterSchemas(app.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._signals = 0
        self.ready = threading.Event()  # set once subscribed and fetching

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (a second one exits at once); SIGTSTP turns quiet."""
        asyncio.run(self.run_async(handle_signals=True))

    async def run_async(self, handle_signals: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._busy = 0
        self._idle: deque[asyncio.Future[None]] = deque()  # runners waiting for a job
        self._buffers: dict[str, deque[pulsar.Message]] = {q: deque() for q in self.plan.names}
        self._room = {queue: threading.Semaphore(1) for queue in self.plan.names}
        # The client may hold more of a queue's jobs: taking one directly is worth a try.
        self._flowing = dict.fromkeys(self.plan.names, False)
        # A queue is dry once the broker had nothing for it: only then may lower ones run.
        self._dry = dict.fromkeys(self.plan.names, False)
        self._last_arrival = dict.fromkeys(self.plan.names, 0.0)
        self._fetching = threading.Event()
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="pulsarjobs-job")
        self.executor = Executor(self.app, self.name, self._threads)
        if handle_signals:
            self._install_signal_handlers()
        consumers = await self._subscribe_until_ready()
        if consumers is None:  # stopped before the broker could be reached
            await asyncio.to_thread(self.app.close)
            return
        self._consumers = consumers
        fetchers = self._start_fetchers()
        self._runners = [asyncio.create_task(self._run_jobs()) for _ in range(self.concurrency)]
        self.ready.set()
        self._presence = await Presence.start(self)  # heartbeats out, quiet/stop commands in
        log.info("worker started", worker=self.name, queues=list(self.plan.names),
                 concurrency=self.concurrency, strict=self.plan.strict)  # fmt: skip
        await self._stop_requested.wait()
        await self._shutdown(fetchers)

    def stop(self) -> None:
        """Ask the worker to shut down gracefully; callable from any thread."""
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)

    def quiet(self) -> None:
        """Stop fetching jobs, finish the running ones, keep running; callable from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._go_quiet)

    def _install_signal_handlers(self) -> None:
        assert self._loop is not None
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(signum, self._on_stop_signal)
        self._loop.add_signal_handler(signal.SIGTSTP, self._go_quiet)

    def _on_stop_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now; unacked jobs go back to the queue")
            os._exit(1)
        log.info("stopping: finishing running jobs", grace_seconds=self.shutdown_timeout)
        assert self._stop_requested is not None
        self._stop_requested.set()

    def _go_quiet(self) -> None:
        if not self._fetching.is_set():
            return
        log.info("quiet: no new jobs will be fetched", worker=self.name)
        self._fetching.clear()
        self._wake(len(self._idle))  # idle runners see that and end
        self._hand_back_buffered()
        self._quieting = asyncio.ensure_future(self._release_prefetched())

    async def _release_prefetched(self) -> None:
        """Once the running jobs are settled, close the consumers: the jobs their client had
        prefetched go back to the broker for other workers instead of waiting here."""
        await asyncio.wait(self._runners)
        await asyncio.to_thread(self._close_consumers)

    # -- fetching ----------------------------------------------------------------------------

    async def _subscribe_until_ready(self) -> dict[str, pulsar.Consumer] | None:
        """Subscribe, retrying while the broker cannot be reached (it may be starting)."""
        assert self._stop_requested is not None
        delay = 1.0
        while not self._stop_requested.is_set():
            try:
                return await asyncio.to_thread(self._subscribe_all)
            except Exception as exc:
                log.warning("cannot subscribe yet; retrying", error=str(exc), retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)
                delay = min(delay * 2, 30.0)
        return None

    def _subscribe_all(self) -> dict[str, pulsar.Consumer]:
        client = self.app.connection.client
        consumers: dict[str, pulsar.Consumer] = {}
        try:
            for queue, topics in self.topics.items():
                keep_dead_letters(client, topics)
                consumers[queue] = subscribe(
                    client, topics, self.app.settings.subscription, self.prefetch, self.name
                )
        except Exception:
            for consumer in consumers.values():
                with contextlib.suppress(Exception):
                    consumer.close()
            raise
        return consumers

    def _start_fetchers(self) -> list[threading.Thread]:
        self._fetching.set()
        threads = [
            threading.Thread(
                target=self._fetch, args=(queue,), name=f"pulsarjobs-fetch-{queue}", daemon=True
            )
            for queue in self.plan.names
        ]
        for thread in threads:
            thread.start()
        return threads

    def _fetch(self, queue: str) -> None:
        """Wait for the queue's next job while the client holds none, and hand it over."""
        consumer, room, loop = self._consumers[queue], self._room[queue], self._loop
        assert loop is not None
        while self._fetching.is_set():
            if not room.acquire(timeout=RECEIVE_POLL_MS / 1000):
                continue
            asked = time.monotonic()
            try:
                message = consumer.receive(timeout_millis=RECEIVE_POLL_MS)
            except pulsar.Timeout:
                room.release()
                loop.call_soon_threadsafe(self._ran_dry, queue, asked)
                continue
            except Exception as exc:  # a closed consumer or a lost connection
                room.release()
                loop.call_soon_threadsafe(self._ran_dry, queue, asked)
                if self._fetching.is_set():
                    log.warning("receive failed; retrying", queue=queue, error=str(exc))
                    self._fetching.wait(1.0)
                continue
            loop.call_soon_threadsafe(self._arrive, queue, message)

    def _arrive(self, queue: str, message: pulsar.Message) -> None:
        if not self._fetching.is_set():  # received just as the worker turned quiet or stopped
            self._give_back(queue, message)
            return
        self._buffers[queue].append(message)
        now = time.monotonic()
        # Jobs coming fast: more may wait in the client, worth taking directly. One by one:
        # each comes with its own hand-over, and a look for more would find none (costly).
        self._flowing[queue] = now - self._last_arrival[queue] < FLOWING_GAP_S
        self._dry[queue] = False
        self._last_arrival[queue] = now
        self._wake(1)

    def _ran_dry(self, queue: str, asked: float) -> None:
        """Nothing came in `RECEIVE_POLL_MS` since `asked`, unless a runner took it directly."""
        if self._buffers[queue] or self._last_arrival[queue] >= asked or self._dry[queue]:
            return
        self._dry[queue] = True
        self._flowing[queue] = False
        self._wake(len(self._idle))  # lower queues may run now

    def _wake(self, count: int) -> None:
        while count > 0 and self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _pick(self) -> tuple[str, pulsar.Message] | None:
        if not self._fetching.is_set():
            return None
        return self._pick_strict() if self.plan.strict else self._pick_weighted()

    def _pick_strict(self) -> tuple[str, pulsar.Message] | None:
        """A job of the first queue holding one, unless a queue before it may still deliver."""
        for queue in self.plan.names:
            message = self._take(queue)
            if message is not None:
                return queue, message
            if not self._dry[queue]:
                return None
        return None

    def _pick_weighted(self) -> tuple[str, pulsar.Message] | None:
        names, weights = self.plan.names, self.plan.weights
        ready = [i for i, queue in enumerate(names) if self._buffers[queue] or self._flowing[queue]]
        while ready:
            chosen = random.choices(ready, weights=[weights[i] for i in ready])[0]
            message = self._take(names[chosen])
            if message is not None:
                return names[chosen], message
            ready.remove(chosen)
        return None

    def _take(self, queue: str) -> pulsar.Message | None:
        """The job handed over for `queue`, else one the client holds already, else None."""
        buffer = self._buffers[queue]
        if buffer:
            self._room[queue].release()
            return buffer.popleft()
        if not self._flowing[queue]:
            return None
        try:
            message = self._consumers[queue].receive(timeout_millis=0)  # never waits
        except Exception:  # pulsar.Timeout: it holds none now; the fetch thread waits for more
            self._flowing[queue] = False
            return None
        self._last_arrival[queue] = time.monotonic()
        return message

    async def _run_jobs(self) -> None:
        """One runner: the next job, by priority, until the worker stops fetching."""
        loop = asyncio.get_running_loop()
        turn_ends = loop.time() + RUNNER_TURN_S
        while self._fetching.is_set():
            picked = self._pick()
            if picked is None:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
            else:
                await self._handle(*picked)
                if loop.time() < turn_ends:
                    continue
                await asyncio.sleep(0)  # jobs that never wait would starve heartbeats, signals
            turn_ends = loop.time() + RUNNER_TURN_S

    # -- settling ----------------------------------------------------------------------------

    async def _handle(self, queue: str, message: pulsar.Message) -> None:
        consumer = self._consumers[queue]
        self._busy += 1
        try:
            run, outcome = await self._outcome(message)
            if outcome is not None:
                await self._settle(self.topics[queue], message, outcome)
                self.stats[outcome.kind] += 1
                if run is not None and outcome.kind != "early":  # early: the same run comes back
                    self._remember_settled(run)
            consumer.acknowledge(message)
        except asyncio.CancelledError:
            consumer.negative_acknowledge(message)  # shutdown ran out of time: hand it back
            raise
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue)
            consumer.negative_acknowledge(message)
        finally:
            self._busy -= 1

    async def _outcome(self, message: pulsar.Message) -> tuple[Run | None, Outcome | None]:
        """The run a message carries and what became of it; no outcome for a second delivery
        of a run this worker already settled."""
        writer_schema = None
        key = WriterSchemas.key(message.topic_name(), message.schema_version())
        if key is not None:
            found, writer_schema = self._schemas.cached(key)
            if not found:  # once per topic and version
                writer_schema = await asyncio.to_thread(self._schemas.fetch, key)
        try:
            envelope = decode(message.data(), writer_schema)
        except EnvelopeError as exc:
            stand_in, reason = undecodable(message, exc), f"Undecodable: {exc}"
            self.app.hooks.emit("on_dead", stand_in, reason)
            return None, Outcome("dead", stand_in, reason=reason)
        run = (envelope.id, envelope.attempt)
        if run in self._settled:
            self.stats["duplicate"] += 1
            log.info("duplicate delivery skipped", job_id=envelope.id, attempt=envelope.attempt)
            return run, None
        return run, await self.executor.run(envelope)

    def _remember_settled(self, run: Run) -> None:
        self._settled[run] = None
        if len(self._settled) > RECENTLY_SETTLED:
            self._settled.popitem(last=False)

    async def _settle(self, topics: QueueTopics, message: pulsar.Message, outcome: Outcome) -> None:
        """Store what replaces the message before it is acknowledged."""
        if outcome.kind in ("retry", "early"):
            await asyncio.wrap_future(self.app.publish_envelope(outcome.envelope, topics.retry))
        elif outcome.kind == "dead":
            data = message.data() if outcome.reason.startswith("Undecodable") else None
            properties = dead_letter_properties(message, outcome)
            published = self.app.connection.publish(
                topics.dead, data if data is not None else encode(outcome.envelope),
                properties=properties,
            )  # fmt: skip
            await asyncio.wrap_future(published)

    # -- stopping ----------------------------------------------------------------------------

    def _hand_back_buffered(self) -> None:
        for queue, buffer in self._buffers.items():
            while buffer:
                self._give_back(queue, buffer.popleft())

    def _give_back(self, queue: str, message: pulsar.Message) -> None:
        """Not started: redelivered at once, to another worker if this one closes."""
        with contextlib.suppress(Exception):  # a closed consumer gives it back anyway
            self._consumers[queue].negative_acknowledge(message)
        self._room[queue].release()

    async def _shutdown(self, fetchers: list[threading.Thread]) -> None:
        self._presence.beat_soon()  # operators see "stopping" at once
        self._fetching.clear()
        self._wake(len(self._idle))  # idle runners see that and end
        for thread in fetchers:
            await asyncio.to_thread(thread.join)
        await asyncio.sleep(0)  # let messages the fetchers handed over land in the buffers
        self._hand_back_buffered()
        running = [runner for runner in self._runners if not runner.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=self.shutdown_timeout)
            for runner in late:
                runner.cancel()  # its job is handed back
            if late:
                log.warning(
                    "jobs did not finish within the grace period; handed back", count=len(late)
                )
                await asyncio.wait(late, timeout=5.0)
        await self._presence.stop()  # its last heartbeat says "stopped"
        await asyncio.to_thread(self._close)
        log.info("worker stopped", worker=self.name, **dict(self.stats))

    # -- presence: what heartbeats report (see presence.py) ------------------------------------

    @property
    def state(self) -> WorkerState:
        if self._stop_requested is not None and self._stop_requested.is_set():
            return "stopping"
        fetching = getattr(self, "_fetching", None)
        return "running" if fetching is not None and fetching.is_set() else "quiet"

    @property
    def busy(self) -> int:
        """Jobs running now."""
        return getattr(self, "_busy", 0)

    def _close(self) -> None:
        self.app.connection.flush()
        self._close_consumers()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.app.close()

    def _close_consumers(self) -> None:
        for consumer in self._consumers.values():
            with contextlib.suppress(Exception):  # closed already, when quiet
                consumer.close()  # unacked jobs go back to other workers at once


def subscribe(
    client: pulsar.Client, topics: QueueTopics, subscription: str, prefetch: int, name: str
) -> pulsar.Consumer:
    """A Shared consumer of a queue and of its group's retry topic."""
    return client.subscribe(
        [topics.jobs, topics.retry],
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
        schema=pulsar_schema(),
        receiver_queue_size=prefetch,
        consumer_name=name,
        initial_position=pulsar.InitialPosition.Earliest,
        negative_ack_redelivery_delay_ms=NACK_DELAY_MS,
        batch_index_ack_enabled=True,
        # The backstop for jobs that crash the worker itself: redelivered this often, dead.
        dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(
            max_redeliver_count=CRASH_REDELIVERIES,
            dead_letter_topic=topics.dead,
            initial_subscription_name=DEAD_LETTER_SUBSCRIPTION,
        ),
    )


def keep_dead_letters(client: pulsar.Client, topics: QueueTopics) -> None:
    """A subscription on the dead-letter topic, so that its messages are kept until handled."""
    client.subscribe(
        topics.dead,
        DEAD_LETTER_SUBSCRIPTION,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    ).close()


def undecodable(message: pulsar.Message, exc: EnvelopeError) -> Envelope:
    """A stand-in envelope for a message that is no job: only its reason travels on."""
    error = JobError("pulsarjobs.Undecodable", str(exc), "", utc_now(), "")
    return Envelope(id=str(message.message_id()), type="", queue="", last_error=error)


def dead_letter_properties(message: pulsar.Message, outcome: Outcome) -> dict[str, str]:
    error = outcome.envelope.last_error
    return {
        "pulsarjobs-reason": outcome.reason,
        "pulsarjobs-error": f"{error.type}: {error.message}"[:1000] if error else "",
        "pulsarjobs-job-id": outcome.envelope.id,
        "pulsarjobs-job-type": outcome.envelope.type,
        "pulsarjobs-origin-topic": message.topic_name(),
        "pulsarjobs-origin-message-id": str(message.message_id()),
    }
