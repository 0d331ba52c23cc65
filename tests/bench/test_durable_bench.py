"""bench.durable_cost runs end to end on a few jobs: every figure arrives; no timing is checked
beyond what always holds (no sleep resumed early)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--jobs", "200", "--repeat", "1", "--warm-up-jobs", "0", "--steps", "5", "--sleeps", "5",
        "--sleep-ms", "500,1500", "--signals", "5"]  # fmt: skip

pytestmark = pytest.mark.broker


def test_the_durable_jobs_benchmark_measures_every_figure(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    out = tmp_path / "durable.json"
    command = [sys.executable, "-m", "bench.durable_cost", *TINY, "--out", str(out)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["errors"] == []
    for kind in ("plain", "durable"):
        assert figures["drain"][kind]["median"]["jobs_per_s"] > 0
    assert figures["drain_ratio"]["jobs_per_s"] > 0
    assert figures["step"]["median"]["jobs"] == 5
    assert 0 < figures["step"]["median"]["p50_ms"] <= figures["step"]["median"]["p99_ms"]
    sleep = figures["sleep"]["median"]
    assert sleep["jobs"] == 5 and sleep["early"] == 0 and sleep["p50_ms"] >= 0
    signal = figures["signal"]["median"]
    assert signal["jobs"] == 5 and signal["p50_ms"] <= signal["p99_ms"]
