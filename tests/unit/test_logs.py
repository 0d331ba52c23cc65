"""What pulsarjobs writes to the log, and what it keeps quiet."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
import structlog

from pulsarjobs import logs
from pulsarjobs.app import App
from pulsarjobs.logs import configure_logging
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner


@pytest.fixture(autouse=True)
def unconfigured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a process that never configured logging (a logger caches its
    configuration on first use, so the jobs logger is a new one too)."""
    monkeypatch.setattr(logs, "_threshold", logs._threshold)
    monkeypatch.setattr(logs, "log", structlog.get_logger("pulsarjobs.jobs"))
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def test_a_service_enqueueing_jobs_prints_no_line_per_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = App(Settings())
    with TestRunner(app):

        @app.job
        def send(to: str) -> None: ...

        for n in range(3):
            send.enqueue(f"user-{n}")
    captured = capsys.readouterr()
    assert "job enqueued" not in captured.out + captured.err


@pytest.mark.parametrize(("level", "shown"), [("debug", True), ("info", False)])
def test_enqueues_are_logged_at_debug_level(
    capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    configure_logging("json", level)
    app = App(Settings())
    with TestRunner(app):

        @app.job
        def send(to: str) -> None: ...

        send.enqueue("user-1")
    assert ("job enqueued" in capsys.readouterr().err) is shown


@pytest.mark.parametrize(("level", "shown"), [("info", True), ("warning", False)])
def test_each_job_done_is_logged_at_info_level(
    capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    configure_logging("json", level)
    app = App(Settings())
    with TestRunner(app) as runner:

        @app.job
        def send(to: str) -> None: ...

        send.enqueue("user-1")
        runner.run_all()
    assert ('"job done"' in capsys.readouterr().err) is shown


@pytest.mark.parametrize(("level", "shown"), [("info", True), ("warning", False)])
def test_the_level_set_last_decides_the_job_done_lines_of_a_running_app(
    capsys: pytest.CaptureFixture[str], level: str, shown: bool
) -> None:
    app = App(Settings())
    configure_logging("json", "warning" if shown else "info")  # as the app started
    with TestRunner(app) as runner:

        @app.job
        def send(to: str) -> None: ...

        send.enqueue("user-1")
        runner.run_all()
        capsys.readouterr()
        configure_logging("json", level)
        send.enqueue("user-2")
        runner.run_all()
    assert ('"job done"' in capsys.readouterr().err) is shown


class Writes(io.StringIO):
    """A stream that keeps each write apart, as the processes of a group share one pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_each_log_record_reaches_the_output_in_one_write(
    monkeypatch: pytest.MonkeyPatch, log_format: logs.LogFormat
) -> None:
    """Processes of `--processes N` write to one pipe: a record written in two pieces (its
    text, then its newline) can be split by another process's record."""
    out = Writes()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(log_format, "info")
    structlog.get_logger("pulsarjobs.test").info("job done", job_id="j1")
    structlog.get_logger("pulsarjobs.test").warning("job failed", job_id="j2")
    assert len(out.calls) == 2, out.calls
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in out.calls), out.calls


def test_an_error_without_a_message_is_logged_by_its_type() -> None:
    assert logs.error_text(TimeoutError()) == "TimeoutError"
    assert logs.error_text(ValueError("no such job")) == "no such job"
