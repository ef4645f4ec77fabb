"""A planted 12-hour step, end to end on the real broker and a real Prometheus: ten days of framed
records (frame a at 20%, then 45% for the last 12 hours) through the aggregator raise exactly one
*shift* alert with its change point, the notifier delivers it once, and the framing overview's
Shifts annotation marks it in Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.dashboards import substitute
from framewatch.processing.trends.cli import group_id, run_aggregator
from framewatch.settings import ALERTS, FRAMED_ITEMS, Settings
from tests.helpers.aggregator import seed, wait_committed
from tests.helpers.alerts import notify_until_committed
from tests.helpers.framed_records import framed
from tests.helpers.paths import ROOT
from tests.helpers.ports import held_ports
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)  # the aggregator's clock: 5 minutes into an hour
STEP_H, HISTORY_H, PER_H = 12, 240, 40  # 7 days of baseline + the 72 h the detectors test


def planted_step() -> list[contracts.FramedItem]:
    """40 items an hour; frame a holds 8 of them (20%), then 18 (45%) in the last 12 full hours."""
    hour = NOW.replace(minute=0)
    out = []
    for h in range(1, HISTORY_H + 1):
        share = 18 if h <= STEP_H else 8
        for i in range(PER_H):
            at = hour - timedelta(hours=h) + timedelta(seconds=i * 90)
            out.append(framed(f"h{h}.{i}", frame="a" if i < share else "b", at=at))
    return out


@pytest.mark.timeout(600)
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package prometheus)")
def test_a_planted_twelve_hour_step_raises_one_shift_alert_delivered_once_and_marked(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str],
    topic_reader: Callable[..., list], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("SHIFT_HOOK_SECRET", "shift-secret")
    with held_ports(2) as (metrics_port, prom_port), Receiver() as receiver:
        settings = settings_factory(metrics_port=metrics_port, metrics_host="127.0.0.1", notify_max_attempts=2)
        topic_factory(settings, FRAMED_ITEMS)
        seed(settings, planted_step())
        config = tmp_path / "prometheus.yml"
        config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: framewatch-aggregate\n"
                          f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
        stop = threading.Event()
        aggregator = threading.Thread(target=run_aggregator, args=(settings, stop),
                                      kwargs={"registry": CollectorRegistry(), "clock": lambda: NOW}, daemon=True)
        aggregator.start()
        prom = f"http://127.0.0.1:{prom_port}/api/v1"
        try:
            assert wait_committed(settings, group_id(settings), settings.topic(FRAMED_ITEMS), 240)

            def shifts() -> list[Alert]:
                alerts = [contracts.decode(Alert, v) for _, v in topic_reader(settings.topic(ALERTS)) if v]
                # each sensitivity alerts on its own; the deployment's level is the one counted and annotated
                return [a for a in alerts if a.kind == "shift" and a.sensitivity == settings.alert_sensitivity]

            wait_until("the shift alert", lambda: bool(shifts()), 60)
            # the annotation's query, as the dashboard holds it, finds the alert in Prometheus
            overview = json.loads((ROOT / "dashboards" / "json" / "framing-overview.json").read_text())
            (held,) = [a["expr"] for a in overview["annotations"]["list"] if a.get("name") == "Shifts"]
            expr = substitute(held, {"watch": "scs", "__interval": "30s"})

            def marked() -> bool:
                try:
                    body = httpx.get(f"{prom}/query", params={"query": expr}, timeout=5).json()
                except httpx.TransportError:
                    return False
                return any(r["metric"].get("frame") == "a" for r in body.get("data", {}).get("result", []))

            wait_until("the Shifts annotation to mark the alert", marked, 90)
        finally:
            stop.set()
            aggregator.join(timeout=30)
            prometheus.terminate()
            prometheus.wait(timeout=30)
        (shift,) = shifts()  # exactly one, for frame a
        step_start = NOW.replace(minute=0) - timedelta(hours=STEP_H)
        assert shift.frame == "a" and shift.change_point is not None
        assert abs((shift.change_point - step_start).total_seconds()) <= 3600, shift.change_point
        assert shift.share_before == pytest.approx(0.2, abs=0.03) and shift.share_after == pytest.approx(0.45, abs=0.05)
        assert shift.share_after_low is not None and shift.share_after_low < shift.share_after < (shift.share_after_high or 0)
        assert shift.false_alarm_rate_per_week and shift.delay_s and shift.delay_s > 0
        # the notifier delivers it once, with its evidence
        subs = tmp_path / "subs.yaml"
        subs.write_text("subscriptions:\n  - subscriber: desk\n    watch: scs\n"
                        f"    channel: {{type: webhook, url: '{receiver.url}', secret_env: SHIFT_HOOK_SECRET}}\n")
        for _ in range(2):  # a restart reads the alerts again: still one delivery
            notify_until_committed(settings, subs, CollectorRegistry())
    delivered = [json.loads(body)["alert"] for _, body in receiver.requests]
    shift_deliveries = [a for a in delivered if a["kind"] == "shift"]
    assert len(shift_deliveries) == 1 and shift_deliveries[0]["change_point"] is not None
