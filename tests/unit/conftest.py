"""The unit tests' App (default settings: nothing reaches a broker) and its in-memory
TestRunner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pulsarjobs.app import App
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner


@pytest.fixture
def app() -> App:
    return App(Settings())


@pytest.fixture
def runner(app: App) -> Iterator[TestRunner]:
    with TestRunner(app) as runner:
        yield runner
