"""Share-of-voice charts: a Vega-Lite spec built with Altair, rendered on the server by vl-convert.

Pages inline the SVG; messages (the notifier) attach the PNG. Data always travels inside the
spec and vl-convert may fetch nothing (``allowed_base_urls=[]``), so a chart never reaches the
network. Fonts are the machine's own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import altair as alt
import vl_convert as vlc

from framewatch.contracts import BUCKETS

WIDTH, HEIGHT = 760, 220
INCOMPLETE_FILL = "#9aa5b1"
MARKER_COLOR = "#b3261e"
_render = threading.Lock()  # one conversion at a time: vl-convert's engine is shared


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def series_rows(buckets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long rows (start, frame, value, complete) of the API's series buckets."""
    return [{"start": _iso(b["start"]), "frame": frame, "value": value, "complete": bool(b["complete"])}
            for b in buckets for frame, value in b["values"].items()]


def share_spec(buckets: Sequence[dict[str, Any]], alerts: Sequence[dict[str, Any]], *, bucket: str,
               measure: str, title: str, width: int = WIDTH, height: int = HEIGHT) -> dict[str, Any]:
    """Vega-Lite spec: a line per frame, the running bucket shaded and dashed, alert markers as rules."""
    rows = series_rows(buckets)
    share = measure == "share"
    x = alt.X("start:T", title=None, scale=alt.Scale(type="utc"),
              axis=alt.Axis(format="%d %b %H:%M", labelAngle=0, labelOverlap=True, tickCount=8))  # a utc scale formats in UTC
    y = alt.Y("value:Q", title="share of items" if share else "items",
              axis=alt.Axis(format="%" if share else "d"), scale=alt.Scale(domainMin=0))
    color = alt.Color("frame:N", title="frame", legend=alt.Legend(orient="top"))
    tip = [alt.Tooltip("frame:N"), alt.Tooltip("value:Q", format=".1%" if share else "d")]
    base = alt.Chart(alt.Data(values=rows))
    layers: list[Any] = [base.transform_filter("datum.complete").mark_line(point=True, strokeWidth=2).encode(
        x=x, y=y, color=color, tooltip=tip)]
    open_ = [b for b in buckets if not b["complete"]]
    if open_:
        size = timedelta(seconds=BUCKETS[bucket])
        last_done = [b["start"] for b in buckets if b["complete"]][-1:]
        tail = [r for r in rows if r["start"] in {_iso(b["start"]) for b in open_} | {_iso(s) for s in last_done}]
        shade = [{"start": _iso(b["start"]), "end": _iso(b["start"] + size), "label": "incomplete bucket"} for b in open_]
        layers = [
            alt.Chart(alt.Data(values=shade)).mark_rect(color=INCOMPLETE_FILL, opacity=0.18).encode(
                x=x, x2="end:T", tooltip=["label:N"]),
            *layers,
            alt.Chart(alt.Data(values=tail)).mark_line(strokeDash=[4, 3], strokeWidth=2).encode(
                x=x, y=y, color=alt.Color("frame:N", legend=None)),
            alt.Chart(alt.Data(values=[r for r in rows if not r["complete"]])).mark_point(filled=False, size=60).encode(
                x=x, y=y, color=alt.Color("frame:N", legend=None), tooltip=tip),
        ]
    marks = [{"start": _iso(a["window_start"]), "what": f"{a['rule']}: {a['frame']}", "rule": a["rule"]}
             for a in alerts]
    if marks:
        # markers use their own channel (dash pattern), so the frames' colour legend stays as it is
        layers.append(alt.Chart(alt.Data(values=marks)).mark_rule(strokeWidth=2, color=MARKER_COLOR).encode(
            x=x, strokeDash=alt.StrokeDash("rule:N", title="alert", legend=alt.Legend(orient="top")),
            tooltip=["what:N"]))
    chart = alt.layer(*layers).properties(width=width, height=height, title=title)
    return dict(chart.to_dict())


def empty_spec(title: str, width: int = WIDTH, height: int = 60) -> dict[str, Any]:
    """A chart saying there is no data in the range (so a page always shows one chart per watch)."""
    chart = alt.Chart(alt.Data(values=[{"text": "no aggregates in this range"}])).mark_text(size=14).encode(
        text="text:N").properties(width=width, height=height, title=title)
    return dict(chart.to_dict())


def bar_spec(counts: dict[str, float], *, title: str, axis: str, percent: bool = False,
             width: int = 360) -> dict[str, Any]:
    """A small horizontal bar chart (frames of a list, scores of a segment, labels per frame)."""
    rows = [{"name": k, "value": v} for k, v in counts.items()]
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        y=alt.Y("name:N", title=None, sort="-x"),
        x=alt.X("value:Q", title=axis, axis=alt.Axis(format="%" if percent else "d", tickMinStep=0.1 if percent else 1)),
        color=alt.Color("name:N", legend=None), tooltip=["name:N", "value:Q"],
    ).properties(width=width, height=max(20, 22 * len(rows)), title=title)
    return dict(chart.to_dict())


def svg(spec: dict[str, Any]) -> str:
    """The chart as an SVG document (inlined by the pages), nothing fetched."""
    with _render:
        return str(vlc.vegalite_to_svg(spec, allowed_base_urls=[]))


def png(spec: dict[str, Any], scale: float = 2.0) -> bytes:
    """The chart as PNG bytes, for e-mail and Slack messages, nothing fetched."""
    with _render:
        return bytes(vlc.vegalite_to_png(spec, scale=scale, allowed_base_urls=[]))
