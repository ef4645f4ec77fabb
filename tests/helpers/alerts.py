"""Builder of an Alert record with its evidence, and a notifier run to its commit, for the notifier tests."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from framewatch.contracts import Alert, AlertItem, alert_key
from framewatch.processing.alerts import cli as notify_cli
from framewatch.settings import ALERTS, Settings
from tests.helpers.aggregator import wait_committed
from tests.helpers.framed_records import T0


def alert(frame: str = "surveillance", score: float = 5.0, rule: str = "share_spike", watch: str = "scs") -> Alert:
    """A share-of-voice alert of *watch* x *frame* for the window starting at T0."""
    return Alert(
        key=alert_key(watch, frame, T0), watch_id=watch, frame=frame, rule=rule, window_start=T0,
        window_end=T0 + timedelta(hours=1), baseline_share=0.2, observed_share=0.45, observed_count=45,
        window_items=100, score=score, detected_at=T0 + timedelta(hours=1),
        top_items=(AlertItem("Title", "http://127.0.0.1/1", "Outlet", "a passage"),),
    )


def notify_until_committed(settings: Settings, subs: Path, registry: CollectorRegistry, timeout_s: float = 60) -> None:
    """Run the notifier in a thread until its group has committed the end of the alerts topic."""
    stop = threading.Event()
    thread = threading.Thread(target=notify_cli.run_notifier, args=(settings, subs, stop),
                              kwargs={"registry": registry, "serve_metrics": False})
    thread.start()
    try:
        assert wait_committed(settings, notify_cli.group_id(settings), settings.topic(ALERTS), timeout_s)
    finally:
        stop.set()
        thread.join(timeout=30)
