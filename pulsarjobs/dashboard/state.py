"""The dashboard's state, made in one place and shared by its pages and actions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.requests import Request

from pulsarjobs.app import App
from pulsarjobs.dashboard.auth import Secret
from pulsarjobs.dashboard.samples import Samples
from pulsarjobs.dashboard.snapshot import Snapshots
from pulsarjobs.dashboard.tasks import Tasks
from pulsarjobs.operations.browse import Browser, Count, JobMessage, Page
from pulsarjobs.operations.index_table import IndexTable
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.job_lookup import exists
from pulsarjobs.operations.job_search import JobSearch
from pulsarjobs.operations.metrics_history import MetricsHistory
from pulsarjobs.operations.queue_metrics import QueueCollector
from pulsarjobs.operations.ready_work import ReadyWork
from pulsarjobs.settings import Settings
from pulsarjobs.transport.backlog import Position
from pulsarjobs.transport.client_log import silent_logger
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.topics import job_index_topic

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
    ready_work: ReadyWork  # /api/ready: what it read of each backlog, kept between looks
    signaler: App  # sends the Waiting page's signals: an App of its own, the user's may be None
    history: MetricsHistory  # the Metrics page's: the metrics topic, read once then what is new
    job_index: IndexTable  # finding a job by id: the job index, read once then what is new
    _signaling: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(
        cls, settings: Settings, secret: Secret, read_only: bool, app: App | None
    ) -> Dashboard:
        inspector = Inspector(settings)
        browser = Browser(inspector)
        samples = Samples()
        ready_work = ReadyWork(inspector)
        metrics = CollectorRegistry()
        metrics.register(QueueCollector(inspector, ready_work))
        signaler = App(settings)
        signaler.connection = Connection(settings, client_logger=silent_logger())  # opens lazily
        return cls(
            settings=settings,
            inspector=inspector,
            browser=browser,
            app=app,
            secret=secret,
            read_only=read_only,
            samples=samples,
            snapshots=Snapshots(browser, samples, ready_work, max_age=POLL_SECONDS - 0.5),
            tasks=Tasks(settings),
            metrics=metrics,
            ready_work=ready_work,
            signaler=signaler,
            history=MetricsHistory(lambda: inspector.connection),
            job_index=IndexTable(lambda: inspector.connection),
        )

    def scheduled(
        self, queue: str, after: Position | None, size: int, search: JobSearch | None
    ) -> Page[JobMessage]:
        """A page of the Scheduled list, read from where ReadyWork knows the first one is: past
        a deep backlog of due jobs, it reads what it shows."""
        start = self.ready_work.scheduled_start(queue, after)
        return self.browser.scheduled(queue, after, size, search, start)

    def count_scheduled(self, queue: str) -> Count:
        return Count(*self.ready_work.count_scheduled(queue))

    def signal(self, key: str, payload: Any, keep: timedelta) -> int:
        """app.signal: how many waiting jobs it resumed. One at a time: the App's signal board
        keeps what it read in memory, for one caller at a time."""
        with self._signaling:
            return self.signaler.signal(key, payload, keep=keep)

    def start(self) -> None:
        """What is read ahead of the first page: the job index, whole (a deep one takes seconds)."""
        topic = job_index_topic(self.settings)
        self.job_index.start(lambda: exists(self.inspector, topic))

    def close(self) -> None:
        self.snapshots.close()
        self.history.close()
        self.job_index.close()
        self.inspector.close()
        self.signaler.close()
        if self.app is not None:
            self.app.close()


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard
