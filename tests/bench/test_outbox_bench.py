"""bench.outbox_cost runs end to end on a few jobs, on the test suite's PostgreSQL: every
figure arrives; no timing is checked beyond what always holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--jobs", "200", "--repeat", "1", "--latency-seconds", "1"]

pytestmark = pytest.mark.broker


def test_the_outbox_benchmark_measures_every_figure(
    broker: BrokerUnderTest, postgres: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    out = tmp_path / "outbox.json"
    command = [sys.executable, "-m", "bench.outbox_cost", *TINY, "--database", postgres,
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["errors"] == []
    for kind in ("plain", "outbox"):
        assert figures["enqueue"][kind]["median"]["jobs_per_s"] > 0
    assert figures["relay"]["median"]["rows_per_s"] > 0
    latency = figures["latency"]["median"]
    assert latency["jobs"] >= 1 and 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert latency["reached_per_s"] > 0
