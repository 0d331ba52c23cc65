"""The dashboard's state, made in one place and shared by its pages and actions."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.requests import Request

from pulsarjobs.app import App
from pulsarjobs.dashboard.auth import Secret
from pulsarjobs.dashboard.samples import Samples
from pulsarjobs.dashboard.snapshot import Snapshots
from pulsarjobs.dashboard.tasks import Tasks
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.queue_metrics import QueueCollector
from pulsarjobs.settings import Settings

POLL_SECONDS = 3.0  # how often live parts of the pages refresh


@dataclass
class Dashboard:
    settings: Settings
    inspector: Inspector
    browser: Browser
    app: App | None  # the user's App, when given: its schedules for the Cron page
    secret: Secret
    read_only: bool
    samples: Samples
    snapshots: Snapshots
    tasks: Tasks
    metrics: CollectorRegistry  # what /metrics serves: the queues' gauges, read when scraped

    @classmethod
    def open(
        cls, settings: Settings, secret: Secret, read_only: bool, app: App | None
    ) -> Dashboard:
        inspector = Inspector(settings)
        browser = Browser(inspector)
        samples = Samples()
        metrics = CollectorRegistry()
        metrics.register(QueueCollector(inspector))
        return cls(
            settings=settings,
            inspector=inspector,
            browser=browser,
            app=app,
            secret=secret,
            read_only=read_only,
            samples=samples,
            snapshots=Snapshots(browser, samples, max_age=POLL_SECONDS - 0.5),
            tasks=Tasks(settings),
            metrics=metrics,
        )

    def close(self) -> None:
        self.snapshots.close()
        self.inspector.close()
        if self.app is not None:
            self.app.close()


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard
