"""Fair queueing by key (docs/flow-control.md): the options and their one-line errors, the lanes'
turns, and the TestRunner taking due jobs in the turns a worker's lanes would."""

from __future__ import annotations

from collections import Counter

import pytest

from pulsarjobs import App, Settings
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.flow.fairness import LaneTurns, lane_of
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.topics import fair_lane_index, queue_of, topics_for

LANES = 16


@pytest.fixture
def app() -> App:
    return App(Settings())


def test_a_key_has_one_lane_everywhere() -> None:
    assert lane_of("tenant-1", LANES) == 3  # BLAKE2b, not hash(): the same in every process
    lanes = Counter(lane_of(f"tenant-{n}", LANES) for n in range(16_000))
    assert len(lanes) == LANES and min(lanes.values()) > 900  # about 1,000 each


def test_lane_topics_are_named_once() -> None:
    topics = topics_for(Settings(), "reports")
    assert topics.lane(3) == "persistent://public/pulsarjobs/reports-fair-3"
    assert fair_lane_index(topics.lane(3)) == 3 and fair_lane_index(topics.jobs) is None
    assert queue_of(Settings(), topics.lane(15)) == "reports"


def test_bad_options_say_what_is_wrong_in_one_line(app: App) -> None:
    with pytest.raises(ConfigurationError, match="fair_weight must be a whole number"):
        app.job(fair_key="k", fair_weight=0)(lambda: None)
    with pytest.raises(ConfigurationError, match="fair_weight needs a fair_key"):
        app.job(fair_weight=2)(lambda: None)
    with pytest.raises(ConfigurationError, match="fair_key must be a non-empty string"):
        app.job(fair_key="")(lambda: None)
    with pytest.raises(ConfigurationError, match="fair_lanes must be between 1 and 256"):
        Settings(fair_lanes=0)

    @app.job(queue="reports", fair_key=lambda tenant: tenant)
    def report(tenant: str) -> None: ...

    @app.job
    def plain() -> None: ...

    @app.job(queue="reports", fair_key=lambda n: n)
    def numbered(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match="fair_key must be a non-empty string, got 7"):
        app.envelope(numbered.call(7))
    with pytest.raises(ConfigurationError, match="queue 'default' has no fair lanes"):
        app.envelope(plain.call().with_options(fair_key="a"))
    with pytest.raises(ValueError, match="either ordered or fair-keyed"):
        app.envelope(report.call("a").with_options(order_key="a"))
    envelope = app.envelope(report.call("acme").with_options(fair_weight=3))
    assert (envelope.fair_key, envelope.fair_weight) == ("acme", 3)
    assert app.queue_topic(envelope) == topics_for(app.settings, "reports").lane(
        lane_of("acme", app.settings.fair_lanes)
    )
    assert app.envelope(plain.call()).fair_key is None  # a plain job's stays on the queue


def turns(lanes: dict[int, list[int]], picks: int, refilling: frozenset[int] = frozenset()) -> str:
    """The lanes `LaneTurns` picks from, each lane a list of its jobs' weights; a lane in
    `refilling` is empty but has jobs on their way."""
    chooser = LaneTurns(len(lanes))

    def head_weight(lane: int) -> int | None:
        if lanes[lane]:
            return lanes[lane][0]
        return 0 if lane in refilling else None

    picked = []
    for _ in range(picks):
        lane = chooser.next(head_weight)
        if lane is None:
            break
        lanes[lane].pop(0)
        picked.append(str(lane))
    return "".join(picked)


def test_lanes_take_turns_by_the_weight_of_their_head() -> None:
    assert turns({0: [], 1: [1] * 9, 2: [1] * 2, 3: [1] * 9}, 9) == "123123131"
    assert turns({0: [1] * 9, 1: [3] * 9, 2: [1] * 9}, 10) == "1112011120"


def test_a_lane_refilling_is_owed_the_rest_of_its_turn() -> None:
    lanes = {0: [], 1: [3], 2: [1] * 9}
    chooser, picked = LaneTurns(3), []

    def head_weight(lane: int) -> int | None:
        return lanes[lane][0] if lanes[lane] else (0 if lane == 1 else None)

    for _ in range(4):
        lane = chooser.next(head_weight)
        assert lane is not None
        lanes[lane].pop(0)
        picked.append(lane)
        if picked == [1, 2]:
            lanes[1] = [3] * 9  # its jobs arrived: 3 of this turn, 2 owed from the last
    for _ in range(6):
        lane = chooser.next(head_weight)
        assert lane is not None
        lanes[lane].pop(0)
        picked.append(lane)
    assert picked == [1, 2, 1, 1, 1, 1, 1, 2, 1, 1]


def test_the_testrunner_starts_a_small_key_before_a_deep_backlog(app: App) -> None:
    started: list[str] = []

    @app.job(queue="reports", fair_key=lambda tenant: tenant)
    def report(tenant: str) -> None:
        started.append(tenant)

    with TestRunner(app) as runner:
        app.enqueue_many([report.call("deep") for _ in range(200)])
        small = next(
            f"t{n}" for n in range(99) if lane_of(f"t{n}", LANES) != lane_of("deep", LANES)
        )
        report.enqueue(small)
        app.enqueue_many([report.call("heavy").with_options(fair_weight=3) for _ in range(30)])
        runner.run_all()
    assert started.index(small) <= 1  # one lane's turn before it at most: the deep key's
    assert len(started) == 231
    last_heavy = len(started) - 1 - started[::-1].index("heavy")
    both = Counter(started[: last_heavy + 1])  # while both keys had jobs waiting: 3 to 1
    assert (both["heavy"], both["deep"]) == (30, 10)
