"""bench.results runs end to end on a few jobs: every result arrives; no timing is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


def test_the_results_benchmark_waits_on_every_result(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "bench.results", "--jobs", "50", "--out", str(out)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["jobs"] == 50 and figures["worker_exit"] == 0
    assert figures["peak_rss_mb"] >= figures["rss_mb_before_waiting"] > 0
