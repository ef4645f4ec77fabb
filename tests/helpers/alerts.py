"""Builder of an Alert record with its evidence, for the notifier tests."""

from __future__ import annotations

from datetime import timedelta

from framewatch.contracts import Alert, AlertItem, alert_key
from tests.helpers.framed_records import T0


def alert(frame: str = "surveillance", score: float = 5.0, rule: str = "share_spike", watch: str = "scs") -> Alert:
    """A share-of-voice alert of *watch* x *frame* for the window starting at T0."""
    return Alert(
        key=alert_key(watch, frame, T0), watch_id=watch, frame=frame, rule=rule, window_start=T0,
        window_end=T0 + timedelta(hours=1), baseline_share=0.2, observed_share=0.45, observed_count=45,
        window_items=100, score=score, detected_at=T0 + timedelta(hours=1),
        top_items=(AlertItem("Title", "http://127.0.0.1/1", "Outlet", "a passage"),),
    )
