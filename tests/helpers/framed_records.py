"""Builders of framed records shared by the aggregation, spike and notifier tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from framewatch import contracts
from framewatch.contracts import FramedItem, FramedSegment

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def framed(
    n: int | str,
    *,
    watch: str = "scs",
    frame: str | None = "surveillance",
    at: datetime = T0,
    segments: tuple[tuple[str | None, str | None], ...] | None = None,
    outlet: str | None = "Outlet A",
    duplicate_of: str | None = None,
    title: str | None = None,
) -> FramedItem:
    """A framed record; *segments* are (frame, cluster) pairs (default: one segment of *frame*)."""
    item_id = f"item{n}"
    segs = segments if segments is not None else ((frame, None),)
    return FramedItem(
        key=contracts.framed_key(item_id, watch), item_id=item_id, watch_id=watch, source_id="src",
        kind="article", published_at=at, processed_at=at + timedelta(minutes=1), frame=frame,
        frame_shares={frame: 1.0} if frame else {},
        segments=tuple(
            FramedSegment(index=i, text=f"passage {n}.{i} about {f or c}", text_hash=f"h{n}.{i}",
                          frame=f, score=0.5 + i / 100, margin=0.1, cluster=c)
            for i, (f, c) in enumerate(segs)
        ),
        codebook_version="v1", model_id="fake", method="test", url=f"http://127.0.0.1/{item_id}",
        title=title or f"Title {n}", outlet=outlet, duplicate_of=duplicate_of,
    )


def history_and_spike(watch: str = "scs", tag: str = "") -> list[FramedItem]:
    """24 h at 40 items/h with frame a at 20%, then 09:00-10:00 with a at 60% (titles "Spike story")."""
    out = []
    for h in range(1, 25):
        for i in range(40):
            at = T0 - timedelta(hours=h) + timedelta(seconds=i * 90)
            out.append(framed(f"{tag}h{h}.{i}", watch=watch, frame="a" if i % 5 == 0 else "b", at=at))
    for i in range(40):
        out.append(framed(f"{tag}s{i}", watch=watch, frame="a" if i < 24 else "b", at=T0 + timedelta(seconds=i * 80),
                          title=f"Spike story {i}"))
    return out
