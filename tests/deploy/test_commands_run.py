"""The chart's command lines run: each Deployment's container, started here as its pod would
start it (its command, its arguments, its environment with the secrets' values in), against the
test broker, answers its probes on the port they name and ends with exit code 0 within its grace
period on SIGTERM, as Kubernetes stops a pod."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pulsarjobs.broker.process import free_port
from tests.conftest import BrokerUnderTest
from tests.deploy.chart import ROOT, container, render
from tests.integration.helpers import fresh_settings

pytestmark = pytest.mark.broker

APP = "tests.apps.pipeline:app"
SECRETS = {("pulsarjobs-dashboard", "token"): "deploy-test-dashboard-token"}
DEFAULT_GRACE_S = 30  # Kubernetes' terminationGracePeriodSeconds when a pod names none
READY_WITHIN_S = 60


def environment(served: dict[str, Any]) -> dict[str, str]:
    """The container's environment, with the values of the secrets it names; beside it only
    what runs Python here (PATH and the like), and the repository, where the test app is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSARJOBS_")}
    env["PYTHONPATH"] = str(ROOT)
    for variable in served["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = SECRETS[ref["name"], ref["key"]]
    return env


def answers(process: subprocess.Popen[bytes], port: int, path: str) -> bool:
    """Whether `path` answers 200 on `port` within READY_WITHIN_S, while the process runs."""
    deadline = time.monotonic() + READY_WITHIN_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.2)
    return False


def test_the_rendered_commands_run_answer_their_probes_and_stop_on_sigterm(
    helm: str, broker: BrokerUnderTest, tmp_path: Path
) -> None:
    settings = fresh_settings(broker)
    values = {
        "app": APP,
        "image": {"repository": "local"},
        "broker": {"serviceUrl": broker.service_url, "adminUrl": broker.admin_url,
                   "namespace": settings.namespace},
        "workers": [{"name": "default", "queues": "default", "metricsPort": free_port(),
                     "autoscaling": {"enabled": True}}],
        "scheduler": {"metricsPort": free_port()},
        "dashboard": {"port": free_port(), "token": {"existingSecret": "pulsarjobs-dashboard"}},
    }  # fmt: skip
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    chart = render(helm, [tmp_path / "values.yaml"])
    started: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any], Path]] = {}
    try:
        for deployment in chart.of_kind("Deployment"):
            name, served = deployment["metadata"]["name"], container(deployment)
            assert served["command"] == ["pulsarjobs"]
            log = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "pulsarjobs", *served["args"]],
                    env=environment(served),
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started[name] = (process, deployment, log)
        assert len(started) == 3  # a worker group, the scheduler, the dashboard
        for name, (process, deployment, log) in started.items():
            served = container(deployment)
            ports = {p["name"]: p["containerPort"] for p in served["ports"]}
            for kind in ("livenessProbe", "readinessProbe"):
                asked = served[kind]["httpGet"]
                port, path = ports[asked["port"]], asked["path"]
                if not answers(process, port, path):
                    pytest.fail(f"{name}: {path} on {port} did not answer 200, exit code "
                                f"{process.poll()}:\n{log.read_text()[-3000:]}")  # fmt: skip
        assert_the_autoscaler_is_answered(chart.of_kind("ScaledObject"), values)
        for process, _, _ in started.values():
            process.send_signal(signal.SIGTERM)  # all at once, as a `helm uninstall` does
        asked_at = time.monotonic()
        for name, (process, deployment, log) in started.items():
            pod = deployment["spec"]["template"]["spec"]
            grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
            try:
                code = process.wait(max(0.0, asked_at + grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} outlived its {grace} s grace:\n{log.read_text()[-3000:]}")
            assert code == 0, f"{name} exited {code}:\n{log.read_text()[-3000:]}"
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


def assert_the_autoscaler_is_answered(scaled: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """KEDA's request, as the ScaledObject's trigger makes it (the Service's host swapped for
    the dashboard's local port), answers with the value it names."""
    ((trigger,),) = [each["spec"]["triggers"] for each in scaled]
    url = httpx.URL(trigger["metadata"]["url"])
    local = url.copy_with(host="127.0.0.1", port=values["dashboard"]["port"])
    token = SECRETS["pulsarjobs-dashboard", "token"]
    answer = httpx.get(local, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()[trigger["metadata"]["valueLocation"]] == 0  # nothing enqueued yet
