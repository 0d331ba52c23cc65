"""What the grouped-jobs scenarios share: waiting until every worker collects members."""

from __future__ import annotations

from pulsarjobs.errors import NotFound
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topic_stats import consumer_count, subscription_of
from pulsarjobs.transport.topics import topics_for
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario


def collectors(scenario: Scenario) -> int:
    """The workers collecting members of the scenario's grouped job."""
    topic = topics_for(scenario.settings, scenario.app.jobs["collects"].queue).groups
    with Admin(scenario.settings.admin_url) as admin:
        try:
            stats = admin.stats(topic)
        except NotFound:
            return 0
    return consumer_count(subscription_of(stats, scenario.settings.subscription))


def wait_for_collectors(scenario: Scenario, count: int) -> None:
    """Members that wait at the broker for a worker run late by design: start once all are in."""
    wait_until(lambda: collectors(scenario) == count, 120, interval=0.5)
