"""The keys waiting on a fair queue's lanes (flow/fairness.py): what `pulsarjobs flow fair` and
the dashboard's Queues page show.

Each lane's backlog is read, up to a limit of messages per lane, and its jobs counted by fair
key; a lane with more waiting than that makes the counts those of the jobs read (`exact` off),
its total still counted in `lanes`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pulsar

from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import FAIR_LANE, fair_lane_index, namespace_topic
from pulsarjobs.wire.envelope import Envelope


@dataclass(frozen=True, slots=True)
class FairKeys:
    queue: str
    lanes: dict[int, int]  # jobs waiting, by lane (only lanes with jobs)
    keys: dict[str, int]  # jobs waiting, by fair key, the most first
    lane_of_key: dict[str, int]
    exact: bool  # False: a lane held more than was read; its keys' counts are of what was read


def lane_topics(
    admin: Admin, settings: Settings, queue: str, existing: Sequence[str] | None = None
) -> list[str]:
    """The queue's lane topics that exist, by lane (`existing`: the namespace's topics, when
    the caller listed them already for its other queues)."""
    prefix = namespace_topic(settings, queue)
    lanes = [
        topic
        for topic in (admin.topics(settings.full_namespace) if existing is None else existing)
        if topic.startswith(f"{prefix}-fair-") and FAIR_LANE.sub("", topic) == prefix
    ]
    return sorted(lanes, key=lambda topic: fair_lane_index(topic) or 0)


def count_keys(
    queue: str,
    lanes: dict[str, int],
    backlog: Callable[[str], Iterable[pulsar.Message]],  # a lane's waiting jobs, oldest first
    envelope_of: Callable[[pulsar.Message], Envelope | None],
    limit: int,
) -> FairKeys:
    """Count the keys among the first `limit` jobs waiting on each lane (`lanes`: lane topic ->
    its backlog)."""
    keys: Counter[str] = Counter()
    lane_of_key: dict[str, int] = {}
    exact = True
    for topic, waiting in lanes.items():
        if not waiting:
            continue
        lane = fair_lane_index(topic) or 0
        for read, message in enumerate(backlog(topic)):
            if read == limit:
                exact = False
                break
            envelope = envelope_of(message)
            if envelope is not None and envelope.fair_key is not None:
                keys[envelope.fair_key] += 1
                lane_of_key[envelope.fair_key] = lane
    by_lane = {fair_lane_index(t) or 0: n for t, n in lanes.items() if n}
    return FairKeys(queue, by_lane, dict(keys.most_common()), lane_of_key, exact)
