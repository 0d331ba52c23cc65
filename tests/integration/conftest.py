"""Fixtures the integration tests share: a namespace of their own, and a record of runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the test jobs append a line to for each run (see tests/apps/pipeline.py)."""
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("PULSARJOBS_TEST_RECORD", str(path))
    return path


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
