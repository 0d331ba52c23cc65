"""What flow control is in force in a namespace, for `pulsarjobs flow` and the dashboard: rate
limits by queue, concurrency limits by key, and the unique keys held now."""

from __future__ import annotations

from dataclasses import dataclass

from pulsarjobs.inspect import Inspector
from pulsarjobs.limits import limits
from pulsarjobs.rates import rate_limit
from pulsarjobs.topics import topics_for
from pulsarjobs.unique import Hold, UniqueKeys

KEYS_SHOWN = 100  # unique keys listed, the soonest to expire first


@dataclass(frozen=True, slots=True)
class FlowReport:
    rate_limits: dict[str, int]  # queue -> starts a second
    concurrency_limits: dict[str, int]  # limit key -> jobs at once
    unique_keys: list[Hold]  # the first KEYS_SHOWN held
    unique_held: int  # how many keys are held in all


def flow_report(inspector: Inspector) -> FlowReport:
    settings = inspector.settings
    rates = {
        queue: limit
        for queue in inspector.queue_names()
        if (limit := rate_limit(inspector.admin, topics_for(settings, queue))) is not None
    }
    unique = UniqueKeys(inspector.connection)
    try:
        held = unique.held()
    finally:
        unique.close()
    return FlowReport(rates, limits(inspector.connection), held[:KEYS_SHOWN], len(held))
