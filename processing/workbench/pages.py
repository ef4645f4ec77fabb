"""The workbench's read pages under /ui/: overview, watch, alert, item list, item.

Handlers are plain functions (run in the server's thread pool) that call the API's read
functions in-process; charts are rendered here and inlined as SVG.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from framewatch.processing.alerts.signing import chart_signature_ok
from framewatch.processing.serve import items as item_queries
from framewatch.processing.serve import reads
from framewatch.processing.workbench import charts, clusters, views
from framewatch.processing.workbench.explain import explanation
from framewatch.processing.workbench.render import page
from framewatch.processing.workbench.session import Sessions
from framewatch.timeutil import to_utc

if TYPE_CHECKING:
    from framewatch.processing.serve.app import ServeContext

PAGE_SIZE = 25
SORTS = {"-published_at": "newest first", "published_at": "oldest first", "-duplicates": "most copies first",
         "title": "title A\u2013Z", "outlet": "outlet A\u2013Z"}


def parse_when(value: str | None) -> datetime | None:
    """A query's date or datetime (naive: UTC); None when empty; ValueError when unreadable."""
    if not value:
        return None
    return to_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))


def add_read_pages(router: APIRouter, ctx: ServeContext, sessions: Sessions) -> None:
    """GET pages: overview, watch, alert, items, item."""

    @router.get("/ui/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, bucket: str | None = None, range: str | None = None,
                 measure: str | None = None) -> HTMLResponse:
        who = sessions.who(request)
        q = views.chart_query(bucket, range, measure)
        return page(request, "overview.html", who, sessions.csrf(request), title="Overview", q=q,
                    watches=views.overview(ctx, q), ranges=list(views.RANGES))

    @router.get("/ui/watches/{watch}", response_class=HTMLResponse, include_in_schema=False)
    def watch_page(request: Request, watch: str, bucket: str | None = None, range: str | None = None,
                   measure: str | None = None, promoted: str | None = None, error: str | None = None) -> HTMLResponse:
        who = sessions.who(request)
        if watch not in {w["id"] for w in views.watch_ids(ctx)}:
            raise HTTPException(404, f"no watch {watch!r}")
        now = ctx.now()
        q = views.chart_query(bucket, range, measure)
        return page(request, "watch.html", who, sessions.csrf(request), title=f"Watch {watch}", watch=watch, q=q,
                    ranges=list(views.RANGES), chart=views.watch_chart(ctx, watch, q, now),
                    shares=views.frame_now_vs_baseline(ctx, watch, now),
                    alerts=views.alert_rows(ctx, watch, None, None)[:views.ALERTS_SHOWN],
                    clusters=clusters.cluster_cards(ctx.lake, watch, now), promoted=promoted, error=error)

    @router.get("/ui/charts/{key}.png", include_in_schema=False)
    def chart_image(key: str, sig: str = "") -> Response:
        """An alert's chart for chat messages: no login (a chat service fetches it), so only with
        the signature of this alert's key that the notifier put in the link."""
        secret = ctx.settings.chart_link_key
        if secret is None or not chart_signature_ok(secret.get_secret_value(), key, sig):
            raise HTTPException(404, "no such chart")  # the same answer either way: nothing to probe
        row = reads.alert(ctx.lake, key)
        if row is None:
            raise HTTPException(404, "no such chart")
        return Response(views.alert_png(ctx, reads.alert_record(row)), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/ui/alerts/{key}", response_class=HTMLResponse, include_in_schema=False)
    def alert_page(request: Request, key: str) -> HTMLResponse:
        who = sessions.who(request)
        row = reads.alert(ctx.lake, key)
        if row is None:
            raise HTTPException(404, "no such alert")
        alert = reads.alert_record(row)
        around = views.alert_context(ctx, alert)
        query: item_queries.ItemQuery = around["query"]
        listed = item_queries.listing(ctx.lake, query, ctx.cache)
        rows = listed.head(PAGE_SIZE).to_dicts()
        segs = views.segments_of(ctx, [r["key"] for r in rows], query.watch)
        params = {"watch": query.watch, "frame": query.frame, "start": _iso(query.start), "end": _iso(query.end)}
        return page(request, "alert.html", who, sessions.csrf(request), title=f"Alert {alert['frame']}", alert=alert,
                    chart=around["chart"], items=_with_passages(rows, segs, None, views.quotes_of(ctx, rows)),
                    total=listed.height, params=params)

    @router.get("/ui/items", response_class=HTMLResponse, include_in_schema=False)
    def item_list(request: Request, watch: str | None = None, frame: str | None = None, outlet: str | None = None,
                  q: str | None = None, sort: str = "-published_at", start: str | None = None,
                  end: str | None = None, offset: int = 0) -> HTMLResponse:
        who = sessions.who(request)
        error = None
        try:
            lo, hi = parse_when(start), parse_when(end)
        except ValueError:
            lo = hi = None
            error = "The start or end is not a date (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)."
        sort_ = sort if sort in SORTS else "-published_at"
        query = item_queries.ItemQuery(watch or None, frame or None, outlet or None, lo, hi, (q or "")[:500] or None,
                                       sort_)  # type: ignore[arg-type]
        listed = item_queries.listing(ctx.lake, query, ctx.cache)
        offset = max(0, min(offset, max(listed.height - 1, 0)))
        rows = listed.slice(offset, PAGE_SIZE).to_dicts()
        segs = views.segments_of(ctx, [r["key"] for r in rows], query.watch)
        params = {"watch": watch, "frame": frame, "outlet": outlet, "q": q, "sort": sort_, "start": start, "end": end}
        watches = views.watch_ids(ctx)
        frames = sorted({f for w in watches for f in w["frames"] if not watch or w["id"] == watch})
        counts = {str(r["frame"] or "no frame"): int(r["len"]) for r in listed.group_by("frame").len().to_dicts()}
        chart = charts.svg(charts.bar_spec(counts, title="Items of this list by frame", axis="items"))
        return page(request, "items.html", who, sessions.csrf(request), title="Items", params=params, chart=chart,
                    items=_with_passages(rows, segs, q, views.quotes_of(ctx, rows)), total=listed.height, offset=offset, size=PAGE_SIZE,
                    watches=[w["id"] for w in watches], frames=frames, sorts=SORTS, error=error)

    @router.get("/ui/items/{key}", response_class=HTMLResponse, include_in_schema=False)
    def item_page(request: Request, key: str, saved: int | None = None, label: str | None = None,
                  error: str | None = None) -> HTMLResponse:
        who = sessions.who(request)
        row = item_queries.detail(ctx.lake, key)
        if row is None:
            raise HTTPException(404, "no such item")
        frames = views.frames_of(ctx, row["watch_id"])
        segments = [{**s, "explanation": explanation(s)} for s in row["segments"]]
        chart = charts.svg(charts.bar_spec(row["frame_shares"] or {"no frame": 1.0}, title="Share of the item's segments",
                                           axis="share", percent=True))
        return page(request, "item.html", who, sessions.csrf(request), title=row["title"] or key, item=row, chart=chart,
                    segments=segments, frames=frames, saved=saved, label=label, error=error)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _with_passages(rows: list[dict[str, Any]], segs: dict[str, list[dict[str, Any]]], term: str | None = None,
                   quotes: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """List rows with the passages of their own frame (shown highlighted), the search term and
    the quotes (shown apart: never the author's words)."""
    out = []
    for r in rows:
        own = [s for s in segs.get(r["key"], []) if s.get("frame") and s.get("frame") == r.get("frame")]
        others = [s for s in segs.get(r["key"], []) if s not in own]
        out.append({**r, "passages": own[:3], "other_passages": others[:1], "term": term,
                    "quotes": (quotes or {}).get(r["item_id"], [])[:2]})
    return out
