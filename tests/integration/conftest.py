"""Fixtures the integration tests share: a namespace of their own (the record of runs is in
tests/conftest.py, shared with the cluster tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings


@pytest.fixture
def fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Touch it, and the `breaks` jobs stop failing."""
    path = tmp_path / "fixed"
    monkeypatch.setenv("PULSARJOBS_TEST_FIX", str(path))
    return path


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    """The test jobs' app on a namespace of its own."""
    created = make_app(fresh_settings(broker))
    yield created
    created.close()
