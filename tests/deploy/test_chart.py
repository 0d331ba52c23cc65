"""The chart as a user meets it: it lints, renders objects the Kubernetes API and KEDA accept,
and what it renders does what docs/deploying.md says: workers drain within their pod's grace
period, probes ask the ports and paths the processes serve, the command lines parse, KEDA asks
for the group's own queues, secrets arrive where the settings read them."""

from __future__ import annotations

import subprocess
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import kubernetes_validate
import pytest
import typer.core
import typer.main
import yaml

from pulsarjobs.cli import app as cli_app
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.settings import ENV_PREFIX, Settings
from pulsarjobs.worker.health import serving
from tests.conftest import unavailable
from tests.deploy import keda
from tests.deploy.chart import (
    CHART,
    FULL_VALUES,
    RELEASE,
    REQUIRED,
    Rendered,
    container,
    helm_args,
    option,
    template,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

KUBERNETES_VERSION = "1.37"  # the API the objects are checked against: kubernetes-validate's
NAMESPACE = "default"  # helm template's release namespace
PROBES = {"livenessProbe": "/livez", "readinessProbe": "/readyz"}
# Environment the containers set that is no field of Settings.
OTHER_VARIABLES = {"PULSARJOBS_DASHBOARD_TOKEN", "REPORTS_BUCKET"}
RENDERS = ["defaults", "full"]
APPS = {"defaults": REQUIRED["app"], "full": yaml.safe_load(FULL_VALUES.read_text())["app"]}


def rendered(request: pytest.FixtureRequest, name: str) -> Rendered:
    found: Rendered = request.getfixturevalue(name)
    return found


def deployments(chart: Rendered) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in chart.of_kind("Deployment")}


def workers(chart: Rendered) -> list[dict[str, Any]]:
    return [d for name, d in deployments(chart).items() if "-worker-" in name]


@pytest.mark.parametrize("values", RENDERS)
def test_the_chart_lints_clean(helm: str, values: str) -> None:
    args = helm_args([FULL_VALUES]) if values == "full" else helm_args(sets=REQUIRED)
    done = subprocess.run([helm, "lint", "--strict", str(CHART), *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", RENDERS)
def test_every_kubernetes_object_is_valid_for_the_api(
    request: pytest.FixtureRequest, values: str
) -> None:
    chart = rendered(request, values)
    checked = [o for o in chart.objects if o["apiVersion"] != keda.API_VERSION]
    assert {o["kind"] for o in checked} >= {"Deployment", "PodDisruptionBudget", "Service"}
    for found in checked:
        # strict: a field the API does not know (a typo) fails too
        kubernetes_validate.validate(found, KUBERNETES_VERSION, strict=True)


def test_the_keda_objects_are_valid_for_kedas_crds(full: Rendered) -> None:
    try:
        schemas = keda.crd_schemas()
    except (httpx.HTTPError, OSError) as exc:
        unavailable(f"cannot download KEDA's CRDs from {keda.ZIP_URL}: {exc}")
    checked = [o for o in full.objects if o["apiVersion"] == keda.API_VERSION]
    assert sorted(o["kind"] for o in checked) == [
        "ScaledObject", "ScaledObject", "TriggerAuthentication", "TriggerAuthentication",
    ]  # fmt: skip
    for found in checked:
        jsonschema.validate(found, keda.strict(schemas[found["kind"]]))


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_rendering_without_a_required_value_fails_saying_what_to_set(
    helm: str, missing: str
) -> None:
    done = template(helm, sets={k: v for k, v in REQUIRED.items() if k != missing})
    assert done.returncode != 0
    assert f"set {missing} to " in done.stderr, done.stderr


@pytest.mark.parametrize("values", RENDERS)
def test_a_worker_drains_within_its_pods_grace_period(
    request: pytest.FixtureRequest, values: str
) -> None:
    for deployment in workers(rendered(request, values)):
        args = container(deployment)["args"]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= float(option(args, "--shutdown-timeout")) + 5, deployment["metadata"]
    [default] = workers(request.getfixturevalue("defaults"))
    # The default drain, 25 s, fits in Kubernetes' default grace period.
    assert default["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30


@pytest.mark.parametrize("values", RENDERS)
def test_probes_and_scrapes_ask_the_port_the_process_serves(
    request: pytest.FixtureRequest, values: str
) -> None:
    for name, deployment in deployments(rendered(request, values)).items():
        served = container(deployment)
        args = served["args"]
        port = int(option(args, "--port" if args[0] == "dashboard" else "--metrics-port"))
        ports = {p["name"]: p["containerPort"] for p in served["ports"]}
        for probe, path in PROBES.items():
            asked = served[probe]["httpGet"]
            assert (asked["path"], ports[asked["port"]]) == (path, port), name
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if args[0] != "dashboard":  # its /metrics takes the token: scraped by a configured job
            assert annotations["prometheus.io/port"] == str(port), name


def test_the_probe_paths_answer_without_a_token() -> None:
    class Fine:
        def live(self) -> tuple[bool, str]:
            return True, "live"

        def ready(self) -> tuple[bool, str]:
            return True, "ready"

    answered = []
    probes = serving(Fine(), lambda environ, start: [b"metrics"])  # the worker's and scheduler's
    for path in PROBES.values():
        probes({"PATH_INFO": path}, lambda status, headers: answered.append(status))
    assert answered == ["200 OK", "200 OK"]
    with TestClient(create_app(Settings(), Secret("t" * 16), read_only=True)) as dashboard:
        for path in PROBES.values():
            assert dashboard.get(path).status_code == 200


@pytest.mark.parametrize("values", RENDERS)
def test_every_command_line_parses_with_the_real_cli(
    request: pytest.FixtureRequest, values: str
) -> None:
    commands = typer.main.get_command(cli_app)
    assert isinstance(commands, typer.core.TyperGroup)
    for name, deployment in deployments(rendered(request, values)).items():
        served = container(deployment)
        assert served["command"] == ["pulsarjobs"]
        subcommand, *args = served["args"]
        found = commands.get_command(typer.Context(commands), subcommand)
        assert found is not None, name
        params = found.make_context(subcommand, list(args)).params  # exits on a bad option
        assert params["app_reference"] == APPS[values], name
        if subcommand == "worker":
            assert params["shutdown_timeout"] > 0 and params["metrics_port"]
        if subcommand == "dashboard":
            assert params["host"] == "0.0.0.0" and params["read_only"]  # read-only by default


@pytest.mark.parametrize("values", RENDERS)
def test_the_environment_names_settings_that_exist(
    request: pytest.FixtureRequest, values: str
) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    for deployment in deployments(rendered(request, values)).values():
        names = {variable["name"] for variable in container(deployment)["env"]}
        assert names <= fields | OTHER_VARIABLES, names - fields


def test_the_broker_token_and_ca_come_from_their_secrets(full: Rendered) -> None:
    for name, deployment in deployments(full).items():
        served, pod = container(deployment), deployment["spec"]["template"]["spec"]
        env = {variable["name"]: variable for variable in served["env"]}
        token = env["PULSARJOBS_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert token == {"name": "pulsarjobs-broker-token", "key": "token"}, name
        trust = env["PULSARJOBS_TLS_TRUST_FILE"]["value"]
        [mount] = [m for m in served["volumeMounts"] if trust.startswith(m["mountPath"] + "/")]
        assert mount["readOnly"], name
        [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        [item] = volume["secret"]["items"]
        assert volume["secret"]["secretName"] == "pulsar-ca" and item["key"] == "ca.pem"
        assert trust == f"{mount['mountPath']}/{item['path']}"
    dashboard = container(full.named("Deployment", f"{RELEASE}-dashboard"))
    [token] = [v for v in dashboard["env"] if v["name"] == "PULSARJOBS_DASHBOARD_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "pulsarjobs-dashboard", "key": "token"}


def test_the_ready_trigger_asks_the_dashboard_for_the_groups_own_queues(full: Rendered) -> None:
    group = f"{RELEASE}-worker-web"
    scaled = full.named("ScaledObject", group)
    assert scaled["spec"]["scaleTargetRef"]["name"] == group
    assert "replicas" not in full.named("Deployment", group)["spec"]  # KEDA sets them
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["valueLocation"] == "ready"
    assert trigger["metadata"]["authMode"] == "bearer"
    url = urlsplit(trigger["metadata"]["url"])
    service = full.named("Service", f"{RELEASE}-dashboard")
    # KEDA's operator runs in its own namespace: the service's name has the release's in it.
    assert url.hostname == f"{RELEASE}-dashboard.{NAMESPACE}.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert url.path == "/api/ready"
    assert parse_qs(url.query) == {"queues": ["critical,default,low"]}  # weights left out
    queues = option(container(full.named("Deployment", group))["args"], "--queues")
    assert queues == "critical:6,default:3,low:1"
    auth = full.named("TriggerAuthentication", trigger["authenticationRef"]["name"])
    [secret] = auth["spec"]["secretTargetRef"]
    assert secret == {"parameter": "token", "name": "pulsarjobs-dashboard", "key": "token"}


def test_the_backlog_trigger_reads_each_queues_subscription(full: Rendered) -> None:
    scaled = full.named("ScaledObject", f"{RELEASE}-worker-reports")
    assert scaled["spec"]["minReplicaCount"] == 0
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "pulsar"
    assert trigger["metadata"]["topic"] == "persistent://public/shop/reports"
    assert trigger["metadata"]["subscription"] == "pulsarjobs"
    assert trigger["metadata"]["adminURL"] == "https://pulsar-broker.pulsar.svc.cluster.local:8443"
    auth = full.named("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {s["parameter"]: s["name"] for s in auth["spec"]["secretTargetRef"]} == {
        "bearerToken": "pulsarjobs-broker-token",
        "ca": "pulsar-ca",
    }


def test_the_defaults(defaults: Rendered) -> None:
    kinds = sorted(o["kind"] for o in defaults.objects)
    assert kinds == ["Deployment"] * 3 + ["PodDisruptionBudget"] * 2 + ["Service"]
    scheduler = defaults.named("Deployment", f"{RELEASE}-scheduler")
    assert scheduler["spec"]["replicas"] == 2  # one leads, one stands by
    assert defaults.named("PodDisruptionBudget", f"{RELEASE}-scheduler")["spec"] == {
        "maxUnavailable": 1,
        "selector": scheduler["spec"]["selector"],
    }
    assert "--read-only" in container(defaults.named("Deployment", f"{RELEASE}-dashboard"))["args"]
    for name, deployment in deployments(defaults).items():
        pod, served = deployment["spec"]["template"]["spec"], container(deployment)
        assert pod["securityContext"]["runAsNonRoot"], name
        assert pod["automountServiceAccountToken"] is False, name
        assert served["securityContext"]["readOnlyRootFilesystem"], name
        [tmp] = [m for m in served["volumeMounts"] if m["mountPath"] == "/tmp"]
        [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume, name  # worker groups keep their metrics' files there
