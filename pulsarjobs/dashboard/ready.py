"""GET /api/ready: the work ready to run, for an autoscaler (KEDA's metrics-api trigger reads
`ready`). `?queues=critical,default` sums those queues, as a worker's --queues names them
(weights allowed); without it, every queue. A paused queue is listed but not summed: workers
would take none of its jobs however many there were."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pulsarjobs.dashboard.state import dashboard_of
from pulsarjobs.dashboard.views import BadRequest
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.worker.feed import QueuePlan


def routes() -> list[Route]:
    return [Route("/api/ready", ready)]


def ready(request: Request) -> Response:
    spec = request.query_params.get("queues", "")
    try:
        names = QueuePlan.parse(spec).names if spec.strip() else None
    except ConfigurationError as exc:
        raise BadRequest(f"queues: {exc}") from None
    queues = dashboard_of(request).ready_work.queues(names)
    counted = [queue for queue in queues if not queue.paused]
    ages = [q.oldest_ready_seconds for q in counted if q.oldest_ready_seconds is not None]
    return JSONResponse(
        {
            "ready": sum(queue.ready for queue in counted),
            "oldest_ready_seconds": max(ages, default=None),
            "exact": all(queue.exact for queue in queues),
            "queues": {
                queue.queue: {
                    "ready": queue.ready,
                    "scheduled": queue.scheduled,
                    "retrying": queue.retrying,
                    "cancelled": queue.cancelled,
                    "oldest_ready_seconds": queue.oldest_ready_seconds,
                    "paused": queue.paused,
                    "exact": queue.exact,
                }
                for queue in queues
            },
        }
    )
