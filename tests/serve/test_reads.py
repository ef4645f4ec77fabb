"""Read routes over the fixture lake, through a real HTTP server: values, paging, export, search."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta

import polars as pl
import pytest

from framewatch.timeutil import format_utc
from tests.serve import lake as fixture_lake
from tests.serve.conftest import Running

WATCH = "china-scs"


def test_watches_list_every_watch_with_its_frames(api: Running) -> None:
    with api.client() as c:
        body = c.get("/watches").raise_for_status().json()
    assert [w["id"] for w in body["watches"]] == ["china-scs", "climate", "odd:watch"]
    assert body["watches"][0]["frames"] == sorted(fixture_lake.FRAMES)
    assert body["total"] == 3 and body["next_page_token"] is None


def test_series_shares_sum_to_one_and_the_last_bucket_is_incomplete(api: Running) -> None:
    now = api.lake.now
    with api.client() as c:
        share = c.get(f"/watches/{WATCH}/series", params={"bucket": "1h", "start": format_utc(now - timedelta(hours=6))}).raise_for_status().json()
        count = c.get(f"/watches/{WATCH}/series", params={"bucket": "1h", "as": "count",
                                                           "start": format_utc(now - timedelta(hours=6))}).json()
    buckets = share["buckets"]
    assert len(buckets) == 6
    for b in buckets:
        assert sum(b["values"].values()) == pytest.approx(1.0)
    assert [b["complete"] for b in buckets] == [True] * 5 + [False]
    # totals are sums over framed-items partitions of the latest row per key (the stale 999 loses)
    for b in count["buckets"]:
        start = pl.Series([b["start"]]).str.to_datetime(time_zone="UTC").item()
        assert b["total"] == api.lake.agg_counts[(WATCH, start, "*")]
        for frame, value in b["values"].items():
            assert value == api.lake.agg_counts[(WATCH, start, frame)]
    assert all(v != 999 for b in count["buckets"] for v in b["values"].values())


def test_series_of_one_frame_and_paging_of_buckets(api: Running) -> None:
    now = api.lake.now
    params = {"bucket": "1h", "frame": "trade", "start": format_utc(now - timedelta(hours=6)), "limit": 4}
    with api.client() as c:
        first = c.get(f"/watches/{WATCH}/series", params=params).json()
        second = c.get(f"/watches/{WATCH}/series", params={**params, "page_token": first["next_page_token"]}).json()
    assert [list(b["values"]) for b in first["buckets"]] == [["trade"]] * 4
    assert len(first["buckets"]) + len(second["buckets"]) == 6 and second["next_page_token"] is None


def test_backfill_of_last_week_changes_last_weeks_buckets(serve_factory: Callable[..., Running]) -> None:
    api = serve_factory()
    week_start = api.lake.now.replace(minute=0) - timedelta(days=8, hours=2)
    params = {"bucket": "1h", "as": "count", "start": format_utc(week_start), "end": format_utc(week_start + timedelta(hours=3))}
    with api.client() as c:
        before = c.get(f"/watches/{WATCH}/series", params=params).json()["buckets"]
        # the sink writes a back-filled batch: the same keys with higher offsets and new counts
        rows = fixture_lake.aggregate_rows(api.lake, WATCH, [week_start + timedelta(hours=h) for h in range(3)],
                                           offset0=50_000, scale=10)
        fixture_lake.write(api.lake.root, "aggregates", rows, fixture_lake.AGG_SCHEMA, "bucket_start",
                           "b-0-000000050000-000000050099.parquet")
        after = c.get(f"/watches/{WATCH}/series", params=params).json()["buckets"]
        today = c.get(f"/watches/{WATCH}/series", params={"bucket": "1h", "as": "count"}).json()["buckets"]
    assert len(before) == len(after) == 3
    assert all(b["complete"] for b in after)
    assert [b["total"] for b in after] == [10 * b["total"] for b in before]
    assert today[-1]["total"] == api.lake.agg_counts[(WATCH, api.lake.now.replace(minute=0), "*")]


def _all_pages(c, path: str, params: dict[str, object], field: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    rows: list[dict[str, object]] = []
    token = None
    while True:
        body = c.get(path, params={**params, **({"page_token": token} if token else {})}).raise_for_status().json()
        rows += body[field]
        token = body["next_page_token"]
        if token is None:
            return rows


def test_item_paging_covers_every_row_once_and_folds_duplicates(api: Running) -> None:
    with api.client() as c:
        rows = _all_pages(c, "/items", {"watch": WATCH, "limit": 7}, "items")
        one = c.get("/items", params={"watch": WATCH, "limit": 500}).json()
    framed = [r for r in api.lake.framed if r["watch_id"] == WATCH]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == one["total"] == len(framed) - 3
    assert keys == [r["key"] for r in one["items"][:len(keys)]] or one["total"] > 50
    # folded: item004/007/010 are copies of item001; listed rows plus their copies are every item
    assert {"china-scs:item004", "china-scs:item007", "china-scs:item010"}.isdisjoint(keys)
    assert next(r for r in rows if r["item_id"] == "item001")["duplicates"] == 3
    assert sum(1 + r["duplicates"] for r in rows) == len(framed)
    published = [r["published_at"] for r in rows]
    assert published == sorted(published, reverse=True)


def test_a_redelivered_key_is_one_row_with_the_latest_values(api: Running) -> None:
    with api.client() as c:
        rows = _all_pages(c, "/items", {"limit": 50}, "items")
        detail = c.get("/items/china-scs:item002").json()
    assert [r["title"] for r in rows if r["key"] == "china-scs:item002"] == ["Title 2"]
    assert detail["title"] == "Title 2"


def test_items_filter_by_frame_outlet_and_time(api: Running) -> None:
    now = api.lake.now
    start, end = now - timedelta(hours=30), now - timedelta(hours=3)
    with api.client() as c:
        body = c.get("/items", params={"watch": WATCH, "frame": "trade", "outlet": "b.example",
                                       "start": format_utc(start), "end": format_utc(end), "sort": "published_at"}).json()
    matching = [r for r in sorted(api.lake.framed, key=lambda r: r["published_at"])
                if r["watch_id"] == WATCH and r["frame"] == "trade" and r["outlet"] == "b.example"
                and start <= r["published_at"] < end]
    # item001 (their original) is outside the range, so its copies 004/007/010 stay listed
    ids = {r["item_id"] for r in matching}
    expected = [r["key"] for r in matching if r["duplicate_of"] not in ids]
    assert "china-scs:item010" in expected
    assert [r["key"] for r in body["items"]] == expected
    assert all(r["duplicates"] == 0 for r in body["items"])


def test_search_is_case_insensitive_over_titles_and_segments(api: Running) -> None:
    with api.client() as c:
        text = c.get("/items", params={"q": "zanZIBAR"}).json()
        title = c.get("/items", params={"q": "title 3", "watch": "climate"}).json()
        none = c.get("/items", params={"q": "no such words anywhere"}).json()
    assert [r["key"] for r in text["items"]] == ["china-scs:item012"]
    assert {r["item_id"] for r in title["items"]} == {"item030", "item032", "item034", "item036", "item038"}
    assert none == {"total": 0, "offset": 0, "next_page_token": None, "items": []}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_is_exactly_the_listing(api: Running, fmt: str) -> None:
    params = {"watch": WATCH, "q": "passage", "sort": "-published_at"}
    with api.client() as c:
        listed = _all_pages(c, "/items", {**params, "limit": 9}, "items")
        response = c.get("/items/export", params={**params, "format": fmt})
    assert response.status_code == 200
    frame = pl.read_csv(io.BytesIO(response.content)) if fmt == "csv" else pl.read_parquet(io.BytesIO(response.content))
    assert frame["key"].to_list() == [r["key"] for r in listed]
    assert frame["duplicates"].to_list() == [r["duplicates"] for r in listed]


def test_export_over_the_cap_is_refused(serve_factory: Callable[..., Running]) -> None:
    api = serve_factory(serve_export_max_rows=5)
    with api.client() as c:
        response = c.get("/items/export", params={"watch": WATCH})
    assert response.status_code == 413 and "narrow" in response.json()["detail"]


def test_one_item_explains_every_segment_with_quotes_apart(api: Running) -> None:
    with api.client() as c:
        body = c.get("/items/china-scs:item001").json()
        odd = c.get("/items/odd:watch:item031")
        missing = c.get("/items/china-scs:nope")
    assert [s["index"] for s in body["segments"]] == [0, 1]
    seg = body["segments"][0]
    assert (seg["frame"], seg["score"], seg["margin"], seg["nearest_examples"]) == ("trade", 0.7, 0.2, ["example of trade"])
    assert body["quotes"] == [{"text": "quoted words 1", "author": "someone", "source_post": None, "origin": "markup"}]
    assert (body["codebook_version"], body["model_id"], body["duplicates"]) == ("cb0123456789", "fake-model", 3)
    assert odd.status_code == 200 and odd.json()["watch_id"] == "odd:watch"
    assert missing.status_code == 404


def test_alerts_by_time_with_evidence(api: Running) -> None:
    now = api.lake.now
    with api.client() as c:
        week = c.get("/alerts", params={"watch": WATCH, "start": format_utc(now - timedelta(days=2))}).json()
        every = _all_pages(c, "/alerts", {"limit": 1}, "alerts")
        one = c.get(f"/alerts/{week['alerts'][0]['key']}").json()
    assert week["total"] == 2
    assert [a["top_items"][0]["title"] for a in week["alerts"]] == ["evidence 0", "evidence 1"]
    assert len(every) == 4 and len({a["key"] for a in every}) == 4
    assert one == week["alerts"][0]


def test_clusters_from_segments(api: Running) -> None:
    with api.client() as c:
        body = c.get("/clusters", params={"watch": WATCH}).json()
    sizes = {cl["id"]: cl["size"] for cl in body["clusters"]}
    expected: dict[str, int] = {}
    for r in api.lake.framed:
        for s in r["segments"]:
            if r["watch_id"] == WATCH and s["cluster"]:
                expected[s["cluster"]] = expected.get(s["cluster"], 0) + 1
    assert sizes == expected
    assert all(1 <= len(cl["samples"]) <= 3 for cl in body["clusters"])


def test_limit_is_bounded_by_page_max(serve_factory: Callable[..., Running]) -> None:
    api = serve_factory(serve_page_max=10)
    with api.client() as c:
        body = c.get("/items", params={"limit": 10_000}).json()
    assert len(body["items"]) == 10 and body["next_page_token"] == "10" and body["total"] == 37


def test_a_new_file_shows_at_once_despite_the_page_cache(api: Running) -> None:
    with api.client() as c:
        before = c.get("/items", params={"watch": WATCH, "limit": 5}).json()
        again = c.get("/items", params={"watch": WATCH, "limit": 5, "page_token": "5"}).json()
        assert api.ctx.cache.hits >= 1  # the second page came from the first page's listing
        row = fixture_lake.framed_row(99, WATCH, api.lake.now + timedelta(minutes=1), 5000, title="Fresh news")
        fixture_lake.write(api.lake.root, "framed_items", [row], fixture_lake.FRAMED_SCHEMA, "published_at",
                           "b-0-000000005000-000000005000.parquet")
        after = c.get("/items", params={"watch": WATCH, "limit": 5}).json()
    assert again["total"] == before["total"]
    assert after["total"] == before["total"] + 1 and after["items"][0]["title"] == "Fresh news"
