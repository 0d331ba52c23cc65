"""What flow control is in force in a namespace, for `pulsarjobs flow` and the dashboard: rate
limits by queue, concurrency limits by key, the unique keys held now and the open debounce
windows (pending debounces)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pulsarjobs.flow.debounce import Debounces, Window
from pulsarjobs.flow.limits import RATE_PREFIX, limits
from pulsarjobs.flow.rates import rate_limit
from pulsarjobs.flow.unique import Hold, UniqueKeys
from pulsarjobs.operations.inspector import Inspector, WorkerStatus
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import topics_for

KEYS_SHOWN = 100  # unique keys listed, the soonest to expire first


@dataclass(frozen=True, slots=True)
class FlowReport:
    rate_limits: dict[str, int]  # queue -> starts a second
    concurrency_limits: dict[str, int]  # limit key -> jobs at once
    key_rate_limits: dict[str, int]  # limit key (a job type, or a call's limit_key) -> starts/s
    unique_keys: list[Hold]  # the first KEYS_SHOWN held
    unique_held: int  # how many keys are held in all
    held_by_limit: int  # jobs waiting for a concurrency slot, in all workers
    debounce_windows: list[Window] = field(default_factory=list)  # open, the first KEYS_SHOWN
    debounces_open: int = 0  # how many windows are open in all


def flow_report(
    connection: Connection,
    unique_keys: UniqueKeys,
    rate_limits: dict[str, int],
    workers: Iterable[WorkerStatus],
    debounces: Debounces | None = None,
) -> FlowReport:
    """With the queues' rate limits and the workers as the caller read them; `unique_keys`
    and `debounces` read on from where they last stopped."""
    held = unique_keys.held()
    waiting = sum(worker.held_by_limit for worker in workers)
    marked = limits(connection)
    concurrency = {key: n for key, n in marked.items() if not key.startswith(RATE_PREFIX)}
    rates = {
        key.removeprefix(RATE_PREFIX): n for key, n in marked.items() if key not in concurrency
    }
    windows = debounces.windows() if debounces is not None else []
    return FlowReport(rate_limits, concurrency, rates, held[:KEYS_SHOWN], len(held), waiting,
                      windows[:KEYS_SHOWN], len(windows))  # fmt: skip


def rate_limits(inspector: Inspector) -> dict[str, int]:
    """Every queue's rate limit, by queue, where one is set."""
    settings = inspector.settings
    return {
        queue: limit
        for queue in inspector.queue_names()
        if (limit := rate_limit(inspector.admin, topics_for(settings, queue))) is not None
    }
