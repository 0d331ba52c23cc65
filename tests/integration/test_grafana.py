"""The ready-made Grafana dashboard (docs/grafana/pulsarjobs.json): every metric it queries is
one a real worker's endpoint or the dashboard's /metrics serves, and every query is PromQL that
Prometheus' own `promtool` accepts (Debian's `prometheus` package, which scripts/bootstrap
installs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pulsarjobs.app import App
from pulsarjobs.dashboard import Secret, create_app
from tests.conftest import unavailable
from tests.integration.helpers import settings_env, start_worker_process, wait_until
from tests.integration.test_metrics import SETTLED, enqueue_outcomes, free_port, settled, stop
from tests.integration.test_metrics import scrape as scrape_worker

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "pulsarjobs.json"
METRIC = re.compile(r"\bpulsarjobs_[a-z_]+\b")
# What Grafana fills in before Prometheus sees a query, as it would for "All" queues.
MACROS = {"$__rate_interval": "5m", "$queue": ".*"}


def queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", ())]


def variable_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]


def filled(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def served_names(text: str) -> set[str]:
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_every_metric_the_grafana_dashboard_queries_is_served(app: App, tmp_path: Path) -> None:
    record, log, port = tmp_path / "record.jsonl", tmp_path / "worker.log", free_port()
    enqueue_outcomes(app)  # jobs that succeed, retry and die: each outcome's series exists
    worker = start_worker_process(settings_env(app.settings, record), log,
                                  "--metrics-port", str(port))  # fmt: skip
    try:
        wait_until(lambda: settled(scrape_worker(port)) == SETTLED, 120, interval=0.5)
        served = served_names(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        stop(worker, log)
    app.jobs["greet"].enqueue("waiting")  # a job waits: the oldest ready job's age is served
    web = create_app(app.settings, Secret("grafana-test"), read_only=True)
    with TestClient(web, base_url="http://127.0.0.1:7420") as client:
        scraped = client.get("/metrics", headers={"Authorization": "Bearer grafana-test"})
    assert scraped.status_code == 200
    served |= served_names(scraped.text)

    used = {name for expr in queries() + variable_queries() for name in METRIC.findall(expr)}
    assert len(used) >= 10, used  # the dashboard was read: it queries this many metrics
    assert sorted(used - served) == []


def test_every_grafana_query_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool not found: install Debian's prometheus package (scripts/bootstrap)")
    # As recording rules, each expression is parsed and checked as Prometheus would.
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "pulsarjobs_grafana",
                "rules": [
                    {"record": f"pulsarjobs_grafana:panel_query_{n}", "expr": filled(expr)}
                    for n, expr in enumerate(queries())
                ],
            }
        ]
    }
    path = tmp_path / "rules.json"  # YAML is a superset of JSON: promtool reads it
    path.write_text(json.dumps(rules))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries())} rules found" in checked.stdout

    broken = tmp_path / "broken.json"  # and promtool does refuse what is not PromQL
    broken.write_text(json.dumps({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (queue (pulsarjobs_queue_ready)"}]}]}))  # fmt: skip
    refused = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert refused.returncode != 0
