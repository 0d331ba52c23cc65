"""Async entry points never block their event loop: every blocking call into the Pulsar client
or the admin API runs on another thread, with the broker up, paused or gone. A broker nobody
listens for is reported as such at once, not as a timeout."""

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pulsar
import pytest

from pulsarjobs import App
from pulsarjobs.broker.process import free_port
from pulsarjobs.clock import utc_now
from pulsarjobs.errors import BrokerUnavailable, PulsarJobsError
from pulsarjobs.settings import Settings
from tests.apps.batches import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings

BLOCKING = [
    (pulsar.Client, ("subscribe", "create_producer", "create_reader", "close")),
    (pulsar.Producer, ("send", "flush", "close")),
    (pulsar.Consumer, ("receive", "acknowledge", "close")),
    (pulsar.Reader, ("read_next", "has_message_available", "close")),
    (httpx.Client, ("send",)),
]


@pytest.fixture
def on_a_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The blocking calls made on a thread that runs an event loop (recorded, then made)."""
    made: list[str] = []

    def recorded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no loop on this thread: it may block
                pass
            else:
                made.append(f"{name} on {threading.current_thread().name}")
            return method(*args, **kwargs)

        return call

    for owner, names in BLOCKING:
        for name in names:
            monkeypatch.setattr(owner, name, recorded(f"{owner.__name__}.{name}",
                                                      getattr(owner, name)))  # fmt: skip
    monkeypatch.setattr(socket, "create_connection",
                        recorded("socket.create_connection", socket.create_connection))  # fmt: skip
    return made


async def enqueue(app: App) -> None:
    await app.jobs["work"].enqueue_async(1)


async def enqueue_call(app: App) -> None:
    await app.enqueue_async(app.jobs["work"].call(1))


async def enqueue_many(app: App) -> None:
    await app.enqueue_many_async([app.jobs["work"].call(n) for n in range(3)])


async def enqueue_in(app: App) -> None:
    await app.enqueue_many_async([app.jobs["work"].call(1)], in_=timedelta(minutes=5))


async def enqueue_at(app: App) -> None:
    await app.enqueue_async(app.jobs["work"].call(1), at=utc_now() + timedelta(minutes=5))


async def chain(app: App) -> None:
    link = app.jobs["link"]
    await app.chain_async(link.call("a"), link.call("b"))


async def batch_open(app: App) -> None:
    async with app.batch(description="empty"):
        pass


async def batch_jobs(app: App) -> None:
    work, link = app.jobs["work"], app.jobs["link"]
    async with app.batch(on_complete=app.jobs["callback"].call("b", "complete")) as batch:
        await batch.enqueue_async(work, 1)
        await batch.enqueue_many_async([work.call(2)], in_=timedelta(minutes=5))
        await batch.chain_async(link.call("a"), link.call("b"))
        async with batch.batch(description="child") as child:
            await child.enqueue_async(work, 3)


async def result(app: App) -> None:
    with pytest.raises(TimeoutError):
        await app.result_async("no-such-job", timeout=1)


ENTRY_POINTS = [enqueue, enqueue_call, enqueue_many, enqueue_in, enqueue_at, chain, batch_open,
                batch_jobs, result]  # fmt: skip


def nowhere() -> Settings:
    """Settings whose broker and admin API nobody listens for."""
    return Settings(service_url=f"pulsar://127.0.0.1:{free_port()}",
                    admin_url=f"http://127.0.0.1:{free_port()}", namespace="nowhere")  # fmt: skip


@pytest.fixture
def fresh_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


@pytest.mark.parametrize("entry_point", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_no_blocking_call_on_the_loop_with_the_broker_up(
    fresh_app: App, on_a_loop: list[str], entry_point: Callable[[App], Awaitable[None]]
) -> None:
    asyncio.run(twice(entry_point, fresh_app))  # the first call connects, the second does not
    assert on_a_loop == [], f"blocking calls made on the loop's thread: {on_a_loop}"


async def twice(entry_point: Callable[[App], Awaitable[None]], app: App) -> None:
    await entry_point(app)
    await entry_point(app)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_no_blocking_call_on_the_loop_with_no_broker(
    on_a_loop: list[str], entry_point: Callable[[App], Awaitable[None]]
) -> None:
    app = make_app(nowhere())
    try:
        with pytest.raises(PulsarJobsError) as raised:
            asyncio.run(entry_point(app))
    finally:
        app.close()
    assert on_a_loop == [], f"blocking calls made on the loop's thread: {on_a_loop}"
    assert isinstance(raised.value, BrokerUnavailable)
    assert "connection refused" in str(raised.value)


def test_the_loop_ticks_on_while_an_enqueue_waits_for_a_paused_broker(
    broker: BrokerUnderTest, fresh_app: App, on_a_loop: list[str]
) -> None:
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.1)
        with broker.paused(), pytest.raises((TimeoutError, PulsarJobsError)):
            await asyncio.wait_for(enqueue(fresh_app), timeout=3)
        ticks.append(time.monotonic())  # the wait's end counts: a loop that never ticked
        ticker.cancel()

    asyncio.run(scenario())
    assert ticks[-1] - ticks[0] > 2.5  # the enqueue did wait for the broker
    gap = max(later - earlier for earlier, later in itertools.pairwise(ticks))
    assert gap < 0.5, f"the loop stood still for {gap:.1f} s"
    assert on_a_loop == [], f"blocking calls made on the loop's thread: {on_a_loop}"


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_broker_nobody_listens_for_is_named_at_once(how: str) -> None:
    app = make_app(settings := nowhere())
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable) as raised:
            if how == "sync":
                app.jobs["work"].enqueue(1)
            else:
                asyncio.run(enqueue(app))
    finally:
        app.close()
    assert str(raised.value) == (
        f"connection refused at {settings.service_url} — is the broker running?"
    )
    assert time.monotonic() - started < 5
