"""One Pulsar client per process, its producers, and publishing that reports the broker's ack.

The client is created on first use, never at import, and again after a fork: the Pulsar client
is not fork-safe. Clients still open when the interpreter exits are flushed and closed then: the
C++ client, destroyed later with the interpreter while its threads run, can abort the process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol, TypeVar

import pulsar
import structlog

from pulsarjobs.errors import BrokerError, BrokerUnavailable, ConfigurationError, PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.settings import Settings
from pulsarjobs.transport import access, client_log
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.answers import (
    SEND_TIMEOUT_MS,
    Acks,
    Outgoing,
    send_each,
    send_in_order,
    too_large,
)
from pulsarjobs.transport.keeping import keep_compacted, keep_results_for
from pulsarjobs.transport.refusals import answered, refusal
from pulsarjobs.transport.schema_registry import pulsar_schema, result_schema
from pulsarjobs.transport.topics import KEEPER_SUBSCRIPTION, carries_jobs

# The name the data key is stored under in an encrypted message; the reader ignores it.
ENCRYPTION_KEY_NAME = "pulsarjobs"
TTL_RECHECK_SECONDS = 60.0

log = structlog.get_logger("pulsarjobs.connection")
T = TypeVar("T")


class Closable(Protocol):
    def close(self) -> None: ...


OnMark = Callable[[str, bytes], None]  # key, value; an empty value: the mark was removed


class Connection:
    in_memory = False  # a TestRunner's stands in for the broker (memory.py)

    def __init__(self, settings: Settings, client_logger: Any = None) -> None:
        """`client_logger`, a pulsar ConsoleLogger or FileLogger, takes the Pulsar client's own
        log lines (default: pulsarjobs' logs, see client_log). The first client of a process
        decides for all: the C++ client keeps one logger per process."""
        self.settings = settings
        self._client_logger = client_logger
        self._client: pulsar.Client | None = None
        self._owner_pid = 0
        self._producers: dict[str, pulsar.Producer] = {}
        self._in_order: dict[str, bool] = {}  # topic -> its producer answers in order
        self._prepared_topics: set[str] = set()
        self._results_kept: dict[str, float] = {}  # results topics: seconds they keep messages
        self._ttl: float | None = None
        self._ttl_checked_at = -TTL_RECHECK_SECONDS
        self._lock = threading.Lock()
        _open_connections.add(self)

    @property
    def client(self) -> pulsar.Client:
        with self._lock:
            return self._current_client()

    def made(self, make: Callable[[pulsar.Client], T]) -> T:
        """`make(client)`, e.g. a producer of the caller's own, under the connection's lock: a
        close on another thread waits for it. A client closed while it makes a producer may
        never answer that call, and its caller would wait for good."""
        with self._lock:
            return make(self._current_client())

    def _current_client(self) -> pulsar.Client:  # under self._lock
        if self._client is None or self._owner_pid != os.getpid():
            self._producers = {}
            self._client = self._new_client()
            self._owner_pid = os.getpid()
        return self._client

    def _new_client(self) -> pulsar.Client:
        try:
            return pulsar.Client(
                self.settings.service_url,
                operation_timeout_seconds=10,
                connection_timeout_ms=5_000,
                logger=self._client_logger or client_log.sink(),
                **client_options(self.settings),
            )
        except Exception as exc:
            raise BrokerUnavailable(
                f"Cannot use Pulsar at {self.settings.service_url}: {exc}"
            ) from exc

    def message_ttl(self) -> float | None:
        """The namespace's message TTL in seconds, asked at most once a minute; None when it
        has none or the admin API cannot say (the broker's own default is no TTL)."""
        now = time.monotonic()
        if now - self._ttl_checked_at > TTL_RECHECK_SECONDS:
            self._ttl_checked_at = now
            try:
                with Admin.of(self.settings) as admin:
                    self._ttl = admin.message_ttl(self.settings.full_namespace)
            except PulsarJobsError as exc:
                log.warning("cannot read the namespace's message TTL", error=error_text(exc))
                self._ttl = None
        return self._ttl

    def prepare_queue(self, topic: str, subscription: str, key_shared: bool = False) -> None:
        """Put the workers' subscription on a queue's topic before its first job: a topic
        nobody subscribes to does not keep its messages. `key_shared`: of the type workers
        read it with (the broker refuses another type while they are connected)."""
        if topic in self._prepared_topics:
            return
        kind = pulsar.ConsumerType.KeyShared if key_shared else pulsar.ConsumerType.Shared
        start = pulsar.InitialPosition.Earliest
        self.made(lambda client: self.first_call(lambda: client.subscribe(
            topic, subscription, consumer_type=kind, initial_position=start
        ).close()))  # fmt: skip
        self._prepared_topics.add(topic)

    def prepared(self, topic: str) -> bool:
        return topic in self._prepared_topics

    def ready(self, topic: str, scheduled: bool = False) -> bool:
        """Whether publishing to `topic` makes no blocking call: its subscription is in place,
        its producer made and, for a `scheduled` job, the namespace's TTL known."""
        fresh = time.monotonic() - self._ttl_checked_at <= TTL_RECHECK_SECONDS
        return (topic in self._prepared_topics and topic in self._producers
                and self._owner_pid == os.getpid() and (fresh or not scheduled))  # fmt: skip

    def put_mark(self, topic: str, key: str, value: bytes) -> None:
        """Store a mark on a marks topic (marks.py), returning once stored; empty removes it."""
        with client_errors(self.settings.service_url, f"writing to {topic}"):
            self.keep_marks(topic)
            client, name = self.client, f"mark {topic}"  # kept under a key no topic has: a
            with self._lock:  # mark is plain bytes, never encrypted as jobs may be, and unbatched
                if (producer := self._producers.get(name)) is None:
                    producer = self._producers[name] = client.create_producer(
                        topic, batching_enabled=False)  # fmt: skip
            producer.send(value, partition_key=key)

    def follow_marks(self, topic: str, on_mark: OnMark) -> Closable:
        """Tell `on_mark` of every mark on `topic` now (before returning) and of each one set
        later, on the client's listener thread, until the returned view is closed (marks.py)."""
        self.keep_marks(topic)
        table = self.client.create_table_view(topic)
        table.for_each_and_listen(on_mark)
        view: Closable = table
        return view

    def keep_marks(self, topic: str) -> None:
        """Make a marks topic keep its marks for good: a subscription that never acknowledges
        (a topic nobody subscribes to may lose its messages, and inactive topics are deleted),
        and compaction, so that reading it reads one message per key."""
        if topic in self._prepared_topics:
            return
        self.prepare_queue(topic, KEEPER_SUBSCRIPTION)
        keep_compacted(self.settings, topic)

    def keep_results(self, topic: str, seconds: float) -> None:
        """Make a results topic keep what is published to it `seconds` at least: a
        subscription that never acknowledges, and a message TTL that ends it (results.py).
        Asks the broker once, and again only for a longer time."""
        if seconds <= self._results_kept.get(topic, 0.0):
            return
        self.prepare_queue(topic, KEEPER_SUBSCRIPTION)
        keep_results_for(self.settings, topic, seconds)
        self._results_kept[topic] = seconds

    def producer(self, topic: str) -> pulsar.Producer:
        producer = self._producers.get(topic)
        if producer is not None:
            return producer
        with self._lock:
            if (producer := self._producers.get(topic)) is None:
                client = self._current_client()
                producer = self._create_producer(client, topic)
                self._producers[topic] = producer
                self._in_order[topic] = not partitioned(client, topic)
            return producer

    def named_producer(self, topic: str, name: str) -> pulsar.Producer:
        """A producer of its own, named: the broker de-duplicates a name's sequence ids."""
        return self.made(lambda client: self._create_producer(client, topic, name))

    def _create_producer(self, client: pulsar.Client, topic: str,
                         name: str | None = None) -> pulsar.Producer:  # fmt: skip
        try:
            return self.first_call(lambda: client.create_producer(
                topic,
                producer_name=name,
                schema=result_schema()
                if topic in self._results_kept
                else pulsar_schema()
                if carries_jobs(topic)
                else pulsar.schema.BytesSchema(),
                send_timeout_millis=SEND_TIMEOUT_MS,
                block_if_queue_full=True,
                # One job, one entry: a Shared subscription then spreads jobs evenly across
                # workers, where a batch would go whole to one of them.
                batching_enabled=False,
                **encryption_options(self.settings),
            ))  # fmt: skip
        except Exception as exc:
            raise refusal(self.settings, exc, f"publishing to {topic}") or BrokerUnavailable(
                f"Cannot publish to {topic} at {self.settings.service_url}: {exc}"
            ) from exc

    def publish(
        self,
        topic: str,
        data: bytes,
        *,
        deliver_at: datetime | None = None,
        properties: dict[str, str] | None = None,
        key: str | None = None,
        acks: Acks | None = None,
    ) -> Future[None]:
        """Send one message (with a message `key`, if given); the future completes once the
        broker has stored it. Messages sent with one `acks` share its future: it completes once
        the broker has them all."""
        acks = acks or Acks(1)
        message = Outgoing(topic, data, deliver_at, properties, key, acks)
        if self._fits(message):
            self._send(topic, [message])
        return acks.stored

    def publish_together(self, messages: Sequence[Outgoing]) -> None:
        """Send messages, each answered to its `acks`; those to one topic are answered together
        where its producer answers in order (answers.py)."""
        by_topic: dict[str, list[Outgoing]] = {}
        for message in messages:
            if self._fits(message):
                by_topic.setdefault(message.topic, []).append(message)
        for topic, group in by_topic.items():
            self._send(topic, group)

    def _fits(self, message: Outgoing) -> bool:
        """Whether the broker takes a message this large; if not, its acks are told so."""
        limit = self.settings.max_payload
        if len(message.data) <= limit:
            return True
        message.acks.failed(too_large(message.topic, len(message.data), limit))
        return False

    def _send(self, topic: str, messages: list[Outgoing]) -> None:
        producer = self.producer(topic)
        if len(messages) > 1 and self._in_order.get(topic, False):
            send_in_order(producer, messages)
        else:
            for message in messages:
                send_each(producer, message)

    def flush(self) -> None:
        for producer in list(self._producers.values()):
            with contextlib.suppress(Exception):  # a failed producer has nothing to flush
                producer.flush()

    def close(self) -> None:
        """Wait for the broker's acks of messages on their way (a closing producer fails them),
        then close the client. A client a parent process made is only dropped."""
        with self._lock:
            client, producers = self._client, list(self._producers.values())
            self._client, self._producers = None, {}
        if client is None or self._owner_pid != os.getpid():
            return
        for producer in producers:
            with contextlib.suppress(Exception):  # a failed producer has nothing to flush
                producer.flush()
        # Closed already by its owner; or its broker is away, and what was sent is acked or
        # failed already (enqueue waits for the acks): nothing is left to do.
        with contextlib.suppress(pulsar.AlreadyClosed, pulsar.NotConnected):
            client.close()

    def first_call(self, call: Callable[[], T]) -> T:
        """`call` (a first producer or subscription), raising early a refusal the client only
        retries on (refusals.py)."""
        return answered(call, self.settings, self.abandon)

    def abandon(self) -> None:
        """Close the client at once, unflushed and without the lock (its holder may be the one
        asking): a refused first call waits on it (refusals.py). The next use makes another."""
        client, self._client, self._producers = self._client, None, {}
        if client is not None and self._owner_pid == os.getpid():
            with contextlib.suppress(Exception):  # closed already: the call ended anyway
                client.close()


# Closed at exit while the interpreter and the client's threads still run: the C++ client's own
# teardown comes after the interpreter's, too late to stop its threads cleanly. Its last lines go
# to client_log's pipe, whose reader is a daemon thread, alive until the interpreter finalizes.
_open_connections: weakref.WeakSet[Connection] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for connection in list(_open_connections):
        with contextlib.suppress(Exception):  # exiting goes on whatever one close does
            connection.close()


def client_options(settings: Settings) -> dict[str, Any]:
    """The Pulsar client's options for the settings' token and TLS trust."""
    options: dict[str, Any] = {"tls_validate_hostname": settings.tls_validate_hostname}
    if settings.token:
        options["authentication"] = pulsar.AuthenticationToken(settings.token)
    if settings.tls_trust_file:
        options["tls_trust_certs_file_path"] = settings.tls_trust_file
    return options


def crypto_key_reader(settings: Settings) -> pulsar.CryptoKeyReader | None:
    """The RSA key files of end-to-end encryption, when the settings name any."""
    public, private = settings.encryption_public_key, settings.encryption_private_key
    if not public and not private:
        return None
    for variable, path in (("PUBLIC", public), ("PRIVATE", private)):
        if path and not os.path.isfile(path):
            raise ConfigurationError(
                f"PULSARJOBS_ENCRYPTION_{variable}_KEY names {path!r}, which is not a file"
            )
    return pulsar.CryptoKeyReader(public or "", private or "")


def encryption_options(settings: Settings) -> dict[str, Any]:
    """A producer's options: encrypt every job with the public key, when one is set."""
    if not settings.encryption_public_key:
        return {}
    return {"encryption_key": ENCRYPTION_KEY_NAME, "crypto_key_reader": crypto_key_reader(settings)}


def probe(service_url: str, timeout: float = 3.0) -> None:
    """Fail at once, naming the URL, when nothing listens where the broker should: the client
    itself would keep retrying for its whole operation timeout."""
    failure = access.connect_failure(service_url, timeout)
    if isinstance(failure, ConnectionRefusedError):
        raise access.refused(service_url)
    if failure is not None:
        raise BrokerUnavailable(f"No Pulsar broker answers at {service_url} ({failure}).")


@contextlib.contextmanager
def client_errors(service_url: str, doing: str) -> Iterator[None]:
    """Report a Pulsar client failure as a BrokerError that names the broker tried."""
    try:
        yield
    except pulsar.AuthorizationError as exc:
        raise access.not_permitted(service_url, None, doing) from exc
    except pulsar.AuthenticationError as exc:
        raise access.wrong_token(service_url) from exc
    except pulsar.Timeout as exc:
        raise BrokerUnavailable(f"No answer from Pulsar at {service_url} while {doing}.") from exc
    except (pulsar.ConnectError, pulsar.LookupError) as exc:
        raise BrokerUnavailable(f"Cannot reach Pulsar at {service_url}: {exc}") from exc
    except pulsar.PulsarException as exc:
        raise BrokerError(f"Pulsar at {service_url} refused {doing}: {exc}") from exc


def partitioned(client: pulsar.Client, topic: str) -> bool:
    """Whether the topic is partitioned: its producer then answers in order per partition
    only. True when the broker cannot say (answers taken one by one are right either way)."""
    try:
        return len(client.get_topic_partitions(topic)) > 1
    except Exception:
        return True
