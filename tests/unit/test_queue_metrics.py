"""A scrape of queue metrics while the broker does not answer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from pulsarjobs import Inspector, QueueCollector, Settings

NOBODY = Settings(service_url="pulsar://127.0.0.1:1", admin_url="http://127.0.0.1:1")


def test_a_broker_that_does_not_answer_is_counted_not_raised() -> None:
    with Inspector(NOBODY) as inspector:
        registry = CollectorRegistry()
        registry.register(QueueCollector(inspector))  # asks nothing of the broker yet
        first = generate_latest(registry).decode()
        second = generate_latest(registry).decode()
    assert "pulsarjobs_queue_scrape_errors_total 1.0" in first
    assert "pulsarjobs_queue_scrape_errors_total 2.0" in second
    assert "pulsarjobs_queue_waiting{" not in second  # no queue is made up
