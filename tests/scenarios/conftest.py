"""The `driver` of a scenario: the in-memory TestRunner, or a Worker on the real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.helpers import fresh_settings
from tests.scenarios.harness import Driver, InMemory, OnBroker


@pytest.fixture
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Parametrized by `harness.on_both`: "memory" or "broker" (which starts the broker)."""
    if request.param == "memory":
        chosen: Driver = InMemory()
    else:
        chosen = OnBroker(fresh_settings(request.getfixturevalue("broker")))
    try:
        yield chosen
    finally:
        chosen.close()
