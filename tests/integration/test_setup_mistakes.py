"""Setup mistakes a newcomer makes, each named in one line that says what to do."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pulsarjobs import App, BrokerUnavailable, JobCall, NotFound, Settings, Worker
from pulsarjobs.cli import app as cli_app
from pulsarjobs.transport.admin import Admin
from tests.conftest import BrokerUnderTest


@pytest.fixture
def app_without_namespace(broker: BrokerUnderTest) -> App:
    namespace = f"missing{uuid.uuid4().hex[:8]}"
    settings = Settings(service_url=broker.service_url, admin_url=broker.admin_url,
                        namespace=namespace)  # fmt: skip
    app = App(settings)

    @app.job
    def greet() -> None: ...

    return app


def test_enqueueing_to_a_namespace_that_does_not_exist_says_how_to_create_it(
    app_without_namespace: App,
) -> None:
    namespace = app_without_namespace.settings.full_namespace
    with pytest.raises(NotFound) as missing:
        app_without_namespace.jobs["greet"].enqueue()
    app_without_namespace.close()
    assert f"namespace {namespace} does not exist" in str(missing.value)
    assert "pulsarjobs namespace create" in str(missing.value)


def test_a_worker_on_a_namespace_that_does_not_exist_stops_and_says_so(
    app_without_namespace: App,
) -> None:
    worker = Worker(app_without_namespace, shutdown_timeout=5)
    with pytest.raises(NotFound, match="does not exist"):
        asyncio.run(asyncio.wait_for(worker.run_async(), 60))


def test_broker_start_makes_the_namespace_pulsarjobs_namespace_names(
    broker: BrokerUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if broker.local is None:
        pytest.skip("needs a broker these tests started")
    name = f"ns{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PULSARJOBS_NAMESPACE", name)
    started = CliRunner().invoke(cli_app, ["broker", "start", "--data-dir",
                                           str(broker.local.data_dir)])  # fmt: skip
    assert started.exit_code == 0, started.output
    with Admin(broker.admin_url) as admin:
        assert f"public/{name}" in admin.namespaces("public")


def test_broker_start_with_the_url_of_a_broker_that_is_not_there_says_to_unset_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSARJOBS_SERVICE_URL", "pulsar://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("PULSARJOBS_ADMIN_URL", "http://127.0.0.1:9")
    started = CliRunner().invoke(cli_app, ["broker", "start", "--data-dir", str(tmp_path)])
    assert started.exit_code != 0
    assert "no healthy broker answers at http://127.0.0.1:9" in started.output
    assert "unset it (and PULSARJOBS_ADMIN_URL) to start one here" in started.output
    assert list(tmp_path.iterdir()) == []  # nothing started


def test_an_admin_url_that_reaches_no_admin_api_says_so_and_shows_no_empty_lists(
    broker: BrokerUnderTest,
) -> None:
    wrong = f"{broker.admin_url}/admin/v2"  # the broker's web server, at a path it does not serve
    for command in (["dlq", "list", "default"], ["queues"], ["workers"]):
        done = CliRunner().invoke(cli_app, ["--service-url", broker.service_url,
                                            "--admin-url", wrong, *command])  # fmt: skip
        assert done.exit_code != 0, (command, done.output)
        assert f"No Pulsar admin API at {broker.admin_url}: GET /admin/v2/admin/v2/" in done.output
        assert "Is the admin URL right" in done.output


def test_a_service_url_at_the_web_port_says_which_port_the_broker_listens_on(
    broker: BrokerUnderTest,
) -> None:
    port = broker.admin_url.rsplit(":", 1)[1]
    app = App(Settings(service_url=f"pulsar://127.0.0.1:{port}", admin_url=broker.admin_url))
    with pytest.raises(BrokerUnavailable, match="A web server answers at pulsar://"):
        app.enqueue(JobCall("greet"))
    app.close()
