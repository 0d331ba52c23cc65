"""Scenario 6: the network between clients and the broker cut by a proxy of our own — first a
black hole (nothing refused, nothing arrives), then every connection reset — while producers
enqueue and a worker runs: nothing whose enqueue returned is lost, and the worker's /livez
answers 200 all along (Kubernetes must not restart workers for a broker away).

The broker is the suite's own, reached through the proxy (conftest.py).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.integration.helpers import read_topic, wait_until
from tests.integration.test_health import probe
from tests.integration.test_metrics import free_port
from tests.reliability.conftest import Scenario
from tests.reliability.producer import BackgroundProducer
from tests.reliability.proxy import Proxy

pytestmark = pytest.mark.reliability

WEDGED_AFTER_S = 3  # shorter than the cut: /livez would fail were it to wait for the broker


def test_connection_cut(own_scenario: Scenario, proxy: Proxy) -> None:
    scenario = own_scenario
    seconds = scenario.sized(10, 60)  # 60: past the clients' send timeout and keep-alive
    port = free_port()  # its probes: a broker out of reach must not fail /livez
    worker = scenario.start_worker("--concurrency", "16", "--metrics-port", str(port),
                                   "--wedged-after", str(WEDGED_AFTER_S))  # fmt: skip
    with BackgroundProducer(scenario) as producer:
        wait_until(lambda: len(scenario.completed()) >= 200, 120, interval=0.2)
        connections = proxy.connections
        proxy.blackhole()
        cut = len(scenario.completed())
        lives: list[tuple[int, str]] = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            lives.append(probe(port, "/livez"))
            time.sleep(0.5)
        during = len(scenario.completed()) - cut
        proxy.reset()
        producer.wait_for(200)  # it gets through once the network is back
        wait_until(lambda: proxy.connections > connections, 60, interval=0.2)
    assert worker.poll() is None, "the worker died when the network was cut"
    count = len(scenario.enqueued())
    wait_until(lambda: len(scenario.completed()) >= count, 120 + count / 20, interval=1)
    scenario.stop_workers()
    made = scenario.check()
    print(f"black hole for {seconds} s ({during} jobs completed meanwhile), then reset; "
          f"enqueue raised {producer.raised} times: {sorted(set(producer.errors))[:3]}; "
          f"{stored_twice(scenario)} jobs stored twice on the queue")  # fmt: skip
    assert producer.unexpected == []
    assert set(lives) == {(200, "live")}, lives  # past --wedged-after without the broker
    assert (made.lost, made.dead_lettered) == (0, 0), made.lost_ids


def stored_twice(scenario: Scenario) -> int:
    """Jobs the queue holds more than one copy of: a producer sent them again after the cut
    (the broker stored them, its acknowledgement was lost), not a redelivery."""
    topic = topics_for(scenario.settings, "default").jobs
    copies = Counter(decode(m.data()).id for m in read_topic(scenario.settings, topic))
    return sum(1 for count in copies.values() if count > 1)
