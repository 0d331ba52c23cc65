"""Celery on Redis with the same jobs, set up for throughput as Celery's docs advise."""

import os

from celery import Celery

from bench.record import stamp

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,  # no result backend: nothing is stored per job
    task_acks_late=False,  # the default: acknowledged when the job starts
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "64")),
    worker_disable_rate_limits=True,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(n: int) -> None:
    return None


@app.task
def latency(sent_ns: int) -> None:
    stamp(sent_ns)
