"""Charts render on the server from inline data, never fetch anything, and show what the pages promise."""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta

import pytest

from framewatch.processing.workbench import charts

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def buckets(n: int, *, last_complete: bool, frames: tuple[str, ...] = ("trade", "military")) -> list[dict[str, object]]:
    """*n* hourly buckets; shares that differ per bucket and frame."""
    out = []
    for i in range(n):
        vals = {f: round((i + j + 1) / (len(frames) + n + 1), 3) for j, f in enumerate(frames)}
        out.append({"start": T0 + timedelta(hours=i), "complete": i < n - 1 or last_complete, "total": 10, "values": vals})
    return out


def alert(at: datetime, rule: str = "share_spike") -> dict[str, object]:
    return {"window_start": at, "window_end": at + timedelta(hours=1), "rule": rule, "frame": "trade"}


def test_the_running_bucket_is_shaded_and_the_complete_ones_are_not() -> None:
    open_svg = charts.svg(charts.share_spec(buckets(6, last_complete=False), [], bucket="1h", measure="share", title="w"))
    done_svg = charts.svg(charts.share_spec(buckets(6, last_complete=True), [], bucket="1h", measure="share", title="w"))
    assert open_svg.startswith("<svg") and done_svg.startswith("<svg")
    assert charts.INCOMPLETE_FILL in open_svg
    assert charts.INCOMPLETE_FILL not in done_svg
    assert "stroke-dasharray" in open_svg  # the dashed segment into the running bucket


def test_share_draws_percent_and_counts_draw_numbers() -> None:
    share = charts.svg(charts.share_spec(buckets(4, last_complete=True), [], bucket="1h", measure="share", title="w"))
    counts = [{**b, "values": {f: 10.0 * v for f, v in b["values"].items()}}  # type: ignore[attr-defined]
              for b in buckets(4, last_complete=True)]
    count = charts.svg(charts.share_spec(counts, [], bucket="1h", measure="count", title="w"))
    assert re.search(r">\d+%<", share) and "share of items" in share and ">01 Mar 10:00<" in share  # UTC labels
    assert not re.search(r">\d+%<", count) and ">items<" in count


def test_alerts_are_marked_and_every_frame_has_a_legend_entry() -> None:
    spec = charts.share_spec(buckets(6, last_complete=False, frames=("trade", "military", "health")),
                             [alert(T0 + timedelta(hours=2)), alert(T0 + timedelta(hours=3), "emergent_growth")],
                             bucket="1h", measure="share", title="w")
    out = charts.svg(spec)
    assert out.count(f'stroke="{charts.MARKER_COLOR}"') >= 2
    for name in ("trade", "military", "health", "share_spike", "emergent_growth"):
        assert out.count(f">{name}<") == 1, name  # one legend entry each, not one per layer


def keys_of(node: object) -> set[str]:
    """Every key at any depth of a JSON-like value."""
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in keys_of(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_of(v)}
    return set()


def test_data_travels_inside_the_spec() -> None:
    spec = charts.share_spec(buckets(3, last_complete=False), [alert(T0)], bucket="1h", measure="share", title="w")
    assert "url" not in keys_of(spec)
    assert [bool(layer["data"]["values"]) for layer in spec["layer"]] == [True] * len(spec["layer"])


def test_a_chart_never_fetches_anything() -> None:
    remote = {"data": {"url": "http://127.0.0.1:9/data.csv"}, "mark": "point",
              "encoding": {"x": {"field": "a", "type": "quantitative"}}}
    with pytest.raises(ValueError, match=r"(?i)allow|url|access|permi"):
        charts.svg(remote)


def test_png_for_messages() -> None:
    spec = charts.share_spec(buckets(5, last_complete=False), [alert(T0)], bucket="1h", measure="share", title="w",
                             width=400, height=150)
    data = charts.png(spec, scale=1.0)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 400 < width < 600 and 150 < height < 320
    assert struct.unpack(">II", charts.png(spec, scale=2.0)[16:24])[0] == 2 * width


def test_bars_and_the_empty_chart() -> None:
    bars = charts.svg(charts.bar_spec({"trade": 3, "military": 1}, title="t", axis="items"))
    assert ">trade<" in bars and ">military<" in bars
    assert "no aggregates in this range" in charts.svg(charts.empty_spec("w"))
