"""The API's own metrics (requests by route template, method and status; latency) and its
/metrics, /healthz, /readyz endpoint on FRAMEWATCH_METRICS_PORT, like every other component's."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

from framewatch.metrics import LATENCY_BUCKETS, NAMESPACE

UNMATCHED = "unmatched"  # a path no route serves: one label, not one per path a stranger tries


class ApiMetrics:
    """Requests and their duration, labelled by the route's template (``/api/v1/items/{key}``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("api_requests", "API requests by route template, method and status.",
                                ["route", "method", "status"], namespace=NAMESPACE, registry=registry)
        self.seconds = Histogram("api_request_duration_seconds", "Time to answer an API request, by route template.",
                                 ["route"], namespace=NAMESPACE, registry=registry, buckets=LATENCY_BUCKETS)


def instrument(app: FastAPI, metrics: ApiMetrics) -> None:
    """Count and time every request *app* answers."""

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            metrics.requests.labels(template, request.method, str(status)).inc()
            metrics.seconds.labels(template).observe(time.perf_counter() - started)
