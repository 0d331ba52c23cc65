"""What flow control costs: a unique enqueue, a concurrency slot, and what ordinary jobs pay.

    python -m bench.flow_cost [--number 300]

On the broker named by PULSARJOBS_SERVICE_URL / PULSARJOBS_ADMIN_URL (a namespace of its own):
the time of one `enqueue` of an ordinary job, of a unique job (a new key: lock, read, hold, job,
unlock), of a duplicate (lock, read, unlock) and of a debounced call (read, job, write); the
time a due debounced job takes to find a later call and give way (read); and the time to take
and give back a slot of a limit with slots to spare. In process, without a broker: `Feed.pick`
of one queue, with and without the ordered-jobs feed beside it (what every ordinary job pays for
ordered jobs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import timeit
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from pulsarjobs.app import App
from pulsarjobs.flow.limits import LimitSlots
from pulsarjobs.jobs import Debounce
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.worker.feed import Feed, QueuePlan


def completed() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


def median_ms(action: Callable[[int], Any], number: int) -> float:
    times = []
    for n in range(number):
        started = time.perf_counter()
        action(n)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def on_broker(number: int) -> dict[str, float]:
    base = Settings.from_env()
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with Admin(base.admin_url, token=base.token) as admin:
        admin.ensure_namespace(f"{base.tenant}/{namespace}")
    app = App(base.with_changes(namespace=namespace))

    @app.job
    def plain(n: int) -> None: ...

    @app.job(unique_for=timedelta(minutes=10))
    def unique(n: int) -> None: ...

    @app.job(concurrency_limit=1_000)
    def limited() -> None: ...

    @app.job(debounce=timedelta(minutes=10))
    def debounced(n: int) -> None: ...

    try:
        plain.enqueue(-1), unique.enqueue(-1)  # connections and topics made before timing
        figures = {
            "enqueue_ms": median_ms(plain.enqueue, number),
            "unique_enqueue_ms": median_ms(unique.enqueue, number),
            "duplicate_enqueue_ms": median_ms(lambda n: unique.enqueue(0), number),
            "debounced_enqueue_ms": median_ms(debounced.enqueue, number),
        }
        # A due job of an earlier call of the key: it reads the table to its end, gives way.
        superseded = app.envelope(debounced.call(0))
        superseded = app.debounces.call(
            superseded, Debounce(timedelta(minutes=10)), lambda envelope: completed()
        )  # not sent: not timed
        debounced.enqueue(1)
        figures["debounced_gives_way_ms"] = median_ms(
            lambda n: app.debounces.superseded_by(superseded), number
        )
        slots = LimitSlots(app, "bench", 1)
        envelope = app.envelope(limited.call())

        def take_and_give(_n: int) -> None:
            slot = slots.take(envelope)
            assert slot is not None
            slots.give(envelope, slot)

        take_and_give(-1)  # the slots are made here, before timing

        figures["slot_take_give_ms"] = median_ms(take_and_give, number)
        slots.close()
        return figures
    finally:
        app.close()


class Ready:
    """A consumer stand-in whose messages are always there."""

    def receive(self, timeout_millis: int | None = None) -> Any:
        raise TimeoutError

    def batch_receive(self) -> list[Any]:
        return []

    def negative_acknowledge(self, message: Any) -> None: ...
    def acknowledge(self, message: Any) -> None: ...
    def close(self) -> None: ...


def pick_ns(number: int, ordered: bool) -> float:
    plan = QueuePlan.parse("default")
    feed = Feed(plan, {"default": Ready()}, 10, {"default": Ready()} if ordered else None)
    feed.open = True
    queue = feed.queues[0]
    message = object()

    def pick() -> None:
        queue._ready.append(message)  # type: ignore[arg-type]
        feed.pick()

    return min(timeit.repeat(pick, number=number, repeat=5)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=300, help="timed calls of each kind")
    args = parser.parse_args()
    figures: dict[str, float] = {
        "pick_ns_plain_feed": pick_ns(200_000, ordered=False),
        "pick_ns_with_ordered_feed": pick_ns(200_000, ordered=True),
        **on_broker(args.number),
    }
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
