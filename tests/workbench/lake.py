"""The workbench's fixture lake: the API's fixture lake plus framed items inside the newest alert's window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.serve import lake as serve_lake

ALERT_WATCH = serve_lake.WATCHES[0]
ALERT_FRAME = "surveillance"
BEHIND = (201, 204, 207, 210)  # n % 3 == 0: framed as surveillance
COPY = 213  # a reprint of the first item behind the alert, folded into it


def alert_key(lake: serve_lake.Lake) -> str:
    """Key of the newest alert of the alert watch (the one the items sit behind)."""
    start = lake.now - timedelta(hours=2)
    return f"{ALERT_WATCH}:{ALERT_FRAME}:{start.isoformat().replace('+00:00', 'Z')}"


def build(root: Path) -> serve_lake.Lake:
    """The API's fixture lake, with four surveillance items (and a folded copy) in the newest alert's window."""
    lake = serve_lake.build(root)
    window = lake.now - timedelta(hours=2)
    rows = []
    for i, n in enumerate(BEHIND):
        text = f"Cameras track every harbour worker, report {n} says"
        rows.append(serve_lake.framed_row(n, ALERT_WATCH, window + timedelta(minutes=5 + 10 * i), 500 + i,
                                          title=f"Harbour surveillance {n}", text=text, cluster="emergent:9"))
    copy = serve_lake.framed_row(COPY, ALERT_WATCH, window + timedelta(minutes=50), 520, title="Harbour surveillance copy",
                                 dup_of=f"item{BEHIND[0]:03d}")
    copy["frame"] = ALERT_FRAME
    rows.append(copy)
    lake.framed += rows
    serve_lake.write(root, "framed_items", rows, serve_lake.FRAMED_SCHEMA, "published_at",
                     "b-0-000000000500-000000000520.parquet")
    raw = [{"_partition": 0, "_offset": 10 + i, "_written_at": r["published_at"], "item_id": r["item_id"],
            "source_id": "src", "feed_url": "https://a.example/feed", "kind": "forum", "url": r["url"],
            "title": r["title"], "author": None, "published_at": r["published_at"],
            "fetched_at": r["published_at"], "text": "text", "outlet": r["outlet"], "schema_version": 1,
            "quotes": [{"text": f"They said the cameras were for safety ({r['item_id']})", "author": "harbourmaster",
                        "source_post": None, "origin": "markup"}]} for i, r in enumerate(rows)]
    serve_lake.write(root, "items", raw, serve_lake.ITEMS_SCHEMA, "published_at", "b-0-000000000010-000000000014.parquet")
    return lake
