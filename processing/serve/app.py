"""The FastAPI app of `framewatch serve`: read routes over the lake, paging, errors, wiring.

Every list is paged (``limit`` at most ``serve_page_max``; ``page_token`` or ``offset``), every
route needs a token (viewer for reads), and every answer is a pydantic model, so the OpenAPI
schema describes all of it. Write routes live in :mod:`.writes`.
"""


import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Histogram

from framewatch.contracts import ANY, BUCKETS
from framewatch.errors import ConfigError
from framewatch.metrics import LATENCY_BUCKETS, NAMESPACE
from framewatch.processing.serve import items as item_queries
from framewatch.processing.serve import models as m
from framewatch.processing.serve import reads
from framewatch.processing.serve.auth import TokenStore, require
from framewatch.processing.serve.cache import ResultCache
from framewatch.processing.serve.lake import AGGREGATES, FRAMED_ITEMS, Lake
from framewatch.processing.serve.subscriptions import SubscriptionBook
from framewatch.processing.serve.topics import BrokerUnavailable, TopicWriter
from framewatch.settings import LABELS, Settings
from framewatch.timeutil import to_utc, utcnow

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
QUEUE_DAYS = 14
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.Problem, "description": why} for code, why in (
        (400, "The request is not valid (a subscription the file loader rejects, a bad range)."),
        (401, "No token, or an unknown one."), (403, "The token's role is too low."),
        (404, "No such thing."), (409, "It exists already."), (413, "The export is larger than allowed."),
        (503, "Kafka is unreachable (writes, subscriptions), or the lake cannot be read now."))
}
EXPORT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


# --- the API's own metrics, served on FRAMEWATCH_METRICS_PORT by the cli like every component's

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


@dataclass
class ServeContext:
    """What the routes share: the lake, limits, tokens, the Kafka side (opened on first use)."""

    settings: Settings
    lake: Lake
    tokens: TokenStore
    now: Callable[[], datetime] = utcnow
    writer: TopicWriter | None = None
    cache: ResultCache = field(default_factory=ResultCache)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _book: SubscriptionBook | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.writer is None:
            self.writer = TopicWriter(self.settings)
        # the alert level lists show by default, here and in the workbench's pages (same reads)
        self.lake = dataclasses.replace(self.lake, sensitivity=self.settings.alert_sensitivity)

    @property
    def page_max(self) -> int:
        """Most rows one response lists."""
        return self.settings.serve_page_max

    def signature(self, name: Hashable, *tables: tuple[str, str | None]) -> Hashable | None:
        """Cache key of a result named *name* read from *tables* (table, watch); None: not cacheable."""
        sigs = [self.lake.signature(table, watch) for table, watch in tables]
        return None if any(s is None for s in sigs) else (name, *sigs)

    def book(self) -> SubscriptionBook:
        """The subscriptions, read from the file and the topic at first use."""
        with self._lock:
            if self._book is None:
                assert self.writer is not None
                self._book = SubscriptionBook(self.writer, self.settings.serve_subscriptions_file)
            return self._book


def page_bounds(total: int, offset: int, limit: int) -> tuple[int, str | None]:
    """(offset, next page token) of a page."""
    nxt = offset + limit
    return offset, (str(nxt) if nxt < total else None)


def utc(value: datetime | None) -> datetime | None:
    """A query's datetime in UTC (naive means UTC), clamped to years the lake can hold."""
    if value is None:
        return None
    value = to_utc(value)
    lo, hi = datetime(1971, 1, 1, tzinfo=value.tzinfo), datetime(9998, 1, 1, tzinfo=value.tzinfo)
    return min(max(value, lo), hi)


class Paging:
    """The paging parameters every list takes."""

    def __init__(self, page_max: int) -> None:
        self.page_max = page_max

    def __call__(
        self,
        limit: Annotated[int | None, Query(ge=1, description="Rows per page (at most serve_page_max).")] = None,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="First row (ignored with page_token).")] = 0,
        page_token: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$", description="next_page_token of the previous page.")] = None,
    ) -> tuple[int, int]:
        start = int(page_token) if page_token is not None else offset
        return start, min(limit or min(100, self.page_max), self.page_max)


def create_app(ctx: ServeContext) -> FastAPI:
    """The API over *ctx*'s lake, with its OpenAPI schema at /api/v1/openapi.json."""
    app = FastAPI(title="framewatch", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs",
                  redoc_url=None, description="The read model of framewatch: series, items, alerts, clusters; "
                  "labels and subscriptions. Every route needs `Authorization: Bearer <token>`.")
    app.state.ctx = ctx
    instrument(app, ApiMetrics(ctx.registry))

    @app.exception_handler(BrokerUnavailable)
    def _broker(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(pl.exceptions.PolarsError)
    @app.exception_handler(OSError)
    def _lake(request: Request, exc: Exception) -> JSONResponse:
        # a remote table with no file yet, a file compacted away mid-scan, an unreadable file
        log.warning("lake read failed: %s: %s", type(exc).__name__, str(exc)[:300])
        return JSONResponse({"detail": f"the lake cannot be read now: {type(exc).__name__}"}, status_code=503)

    @app.exception_handler(ConfigError)
    def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    viewer = Depends(require(ctx.tokens, "viewer"))
    paging = Paging(ctx.page_max)
    router = APIRouter(prefix=PREFIX, responses=ERRORS, dependencies=[viewer])
    add_read_routes(router, ctx, paging)
    from framewatch.processing.serve.writes import add_write_routes

    writes = APIRouter(prefix=PREFIX, responses=ERRORS)
    add_write_routes(writes, ctx, paging)
    app.include_router(router)
    app.include_router(writes)
    from framewatch.processing.workbench.forms import add_pages

    add_pages(app, ctx)  # the workbench's pages under /ui/, on the same reads
    return app


def add_read_routes(router: APIRouter, ctx: ServeContext, paging: Paging) -> None:
    """Watches, series, alerts, items (list, export, one), clusters."""
    Page = Annotated[tuple[int, int], Depends(paging)]

    @router.get("/watches", response_model=m.WatchPage, tags=["read"])
    def list_watches(page: Page) -> m.WatchPage:
        """Watches and the frames their aggregates count."""
        key = ctx.signature("watches", (AGGREGATES, None), (FRAMED_ITEMS, None))
        frame = ctx.cache.get(key, lambda: reads.watches(ctx.lake))
        offset, token = page_bounds(frame.height, page[0], page[1])
        return m.WatchPage(total=frame.height, offset=offset, next_page_token=token,
                           watches=[m.Watch(**r) for r in frame.slice(offset, page[1]).to_dicts()])

    @router.get("/watches/{watch}/series", response_model=m.SeriesPage, tags=["read"])
    def series(
        watch: str, page: Page,
        bucket: Annotated[Literal["5m", "1h", "1d"], Query(description="Bucket size.")] = "1h",
        frame: Annotated[str | None, Query(description="One frame (default: every frame).")] = None,
        outlet: Annotated[str, Query(description="One outlet (default * = all outlets).")] = ANY,
        start: Annotated[datetime | None, Query(description="First publication time (default: end - 7 days).")] = None,
        end: Annotated[datetime | None, Query(description="End of the range, exclusive (default: now).")] = None,
        measure: Annotated[Literal["share", "count"], Query(alias="as", description="share of the watch's items, or counts")] = "share",
    ) -> m.SeriesPage:
        """Share of voice by publication time; the last, incomplete bucket has ``complete: false``."""
        now = ctx.now()
        hi = utc(end) or now + timedelta(seconds=BUCKETS[bucket])
        lo = utc(start) or hi - timedelta(days=7)
        rows = reads.series(ctx.lake, watch, bucket, lo, hi, frame=frame, outlet=outlet, measure=measure, now=now)
        offset, token = page_bounds(len(rows), page[0], page[1])
        return m.SeriesPage(total=len(rows), offset=offset, next_page_token=token, watch=watch, bucket=bucket,
                            measure=measure, outlet=outlet,
                            buckets=[m.SeriesBucket(**r) for r in rows[offset:offset + page[1]]])

    @router.get("/alerts", response_model=m.AlertPage, tags=["read"])
    def list_alerts(
        page: Page, watch: str | None = None, start: datetime | None = None, end: datetime | None = None,
        sensitivity: Annotated[Literal["low", "medium", "high", "all"] | None, Query(
            description="Shifts and drifts of this level (all: every level's); default: the deployment's "
                        "FRAMEWATCH_ALERT_SENSITIVITY. Spikes and emergent framings are always listed.")] = None,
    ) -> m.AlertPage:
        """Alerts detected in [start, end), newest first, with their evidence."""
        frame = reads.alerts(ctx.lake, watch, utc(start), utc(end), sensitivity)
        offset, token = page_bounds(frame.height, page[0], page[1])
        rows = frame.slice(offset, page[1]).to_dicts() if frame.height else []
        return m.AlertPage(total=frame.height, offset=offset, next_page_token=token,
                           alerts=[m.Alert(**reads.alert_record(r)) for r in rows])

    @router.get("/alerts/{key}", response_model=m.Alert, tags=["read"])
    def one_alert(key: str) -> m.Alert:
        """One alert with its evidence."""
        row = reads.alert(ctx.lake, key)
        if row is None:
            raise HTTPException(404, "no such alert")
        return m.Alert(**reads.alert_record(row))

    def item_query(watch: str | None = None, frame: str | None = None, outlet: str | None = None,
                   start: datetime | None = None, end: datetime | None = None,
                   q: Annotated[str | None, Query(max_length=500, description="Case-insensitive text in the title or a segment.")] = None,
                   sort: item_queries.Sort = "-published_at") -> item_queries.ItemQuery:
        return item_queries.ItemQuery(watch, frame, outlet, utc(start), utc(end), q, sort)

    Query_ = Annotated[item_queries.ItemQuery, Depends(item_query)]

    @router.get("/items", response_model=m.ItemPage, tags=["read"])
    def list_items(query: Query_, page: Page) -> m.ItemPage:
        """Framed items by watch, frame, outlet, publication time and text; duplicates folded."""
        frame = item_queries.listing(ctx.lake, query, ctx.cache)
        offset, token = page_bounds(frame.height, page[0], page[1])
        return m.ItemPage(total=frame.height, offset=offset, next_page_token=token,
                          items=[m.ItemSummary(**r) for r in frame.slice(offset, page[1]).to_dicts()])

    @router.get("/items/export", tags=["read"], response_class=StreamingResponse,
                responses={200: {"content": {t: {} for t in EXPORT_TYPES.values()},
                                 "description": "Every row /items lists for the same query, in order."}})
    def export_items(query: Query_, format: Literal["csv", "parquet"] = "csv") -> StreamingResponse:
        """Exactly what /items lists for the query (all pages), as CSV or Parquet, streamed."""
        frame = item_queries.listing(ctx.lake, query, ctx.cache)
        cap = ctx.settings.serve_export_max_rows
        if frame.height > cap:
            raise HTTPException(413, f"{frame.height} rows; an export holds at most {cap}: narrow the query")
        return StreamingResponse(item_queries.export_chunks(frame, format), media_type=EXPORT_TYPES[format],
                                 headers={"Content-Disposition": f'attachment; filename="items.{format}"'})

    @router.get("/items/{key}", response_model=m.ItemDetail, tags=["read"])
    def one_item(key: str) -> m.ItemDetail:
        """One item: every segment's frame, score, margin, nearest examples and cluster; quotes apart."""
        row = item_queries.detail(ctx.lake, key)
        if row is None:
            raise HTTPException(404, "no such item")
        return m.ItemDetail(**row)

    @router.get("/queue", response_model=m.QueuePage, tags=["labels"])
    def labelling_queue(page: Page, watch: str | None = None,
                        days: Annotated[int, Query(ge=1, le=400, description="How far back passages come from.")] = QUEUE_DAYS
                        ) -> m.QueuePage:
        """The passages the model is least sure of, first, in turns over the frames (the least labelled
        frame first); answer with a label (a frame or ``none``) or a skip, and the passage leaves the queue."""
        # imported here: the workbench imports serve
        from framewatch.processing.workbench.queue import in_queue_order

        assert ctx.writer is not None
        labels = ctx.writer.read(LABELS)
        frame = in_queue_order(reads.uncertain(ctx.lake, watch, ctx.now() - timedelta(days=days), answered(labels)),
                               labels.values())
        offset, token = page_bounds(frame.height, page[0], page[1])
        rows = frame.slice(offset, page[1]).to_dicts() if frame.height else []
        return m.QueuePage(total=frame.height, offset=offset, next_page_token=token,
                           entries=[m.QueueEntry(**{**r, "top": list(r["top"] or [])}) for r in rows])

    @router.get("/clusters", response_model=m.ClusterPage, tags=["read"])
    def list_clusters(page: Page, watch: str | None = None) -> m.ClusterPage:
        """Emergent clusters (segments' ``cluster`` values), largest first, with sample passages."""
        key = ctx.signature(("clusters", watch), (FRAMED_ITEMS, watch))
        frame = ctx.cache.get(key, lambda: reads.clusters(ctx.lake, watch))
        offset, token = page_bounds(frame.height, page[0], page[1])
        rows = frame.slice(offset, page[1]).to_dicts() if frame.height else []
        return m.ClusterPage(total=frame.height, offset=offset, next_page_token=token,
                             clusters=[m.Cluster(**r) for r in rows])


def answered(labels: Mapping[str, Mapping[str, Any] | None]) -> set[str]:
    """``item#index`` of the segments labelled (a frame or ``none``) or skipped, from the labels topic's values."""
    return {key for key, v in labels.items() if v is not None and (v.get("frame") or v.get("skipped"))}


def tokens_path(settings: Settings) -> Path:
    """Where the API's tokens are kept."""
    return settings.serve_tokens_file or settings.state_dir / "serve" / "tokens.json"
