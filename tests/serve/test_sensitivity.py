"""Sensitivity in the API: the alert list shows the deployment's level (plus spikes and emergent
framings, which have none) unless ``?sensitivity=`` asks for another or ``all``, also over a lake
whose older files predate the column; a subscription names its level, and a bad one is a 422."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import polars as pl
import pytest

from framewatch.contracts import SENSITIVITIES, alert_key
from tests.serve.conftest import Running, kafka_or_skip
from tests.serve.lake import ALERT_SCHEMA, DT, WATCHES, write

WATCH = WATCHES[0]
SHIFT_SCHEMA = {**ALERT_SCHEMA, "kind": pl.String, "change_point": DT, "detector": pl.String, "sensitivity": pl.String}


def add_shifts(api: Running) -> dict[str, str]:
    """One shift per level, detected half an hour ago, in a file after the fixture's (which has no
    level column); their keys by level."""
    now = api.lake.now
    start = now - timedelta(hours=6)
    rows = [{"_partition": 0, "_offset": 100 + i, "_written_at": now, "key": alert_key(WATCH, "trade", start, "shift", level),
             "watch_id": WATCH, "frame": "trade", "rule": "binomial_cusum", "window_start": start, "window_end": now,
             "baseline_share": 0.1, "observed_share": 0.2, "observed_count": 40, "window_items": 200, "score": 9.0,
             "detected_at": now - timedelta(minutes=30), "top_items": [], "schema_version": 3, "kind": "shift",
             "change_point": start, "detector": "binomial_cusum", "sensitivity": level}
            for i, level in enumerate(SENSITIVITIES)]
    write(api.lake.root, "alerts", rows, SHIFT_SCHEMA, "detected_at", "b-0-000000000100-000000000102.parquet")
    return {r["sensitivity"]: r["key"] for r in rows}


def listed(api: Running, **params: str) -> list[dict[str, object]]:
    with api.client() as c:
        body = c.get("/alerts", params={"watch": WATCH, "limit": 50, **params}).json()
    return list(body["alerts"])


def test_alerts_show_the_deployments_level_unless_asked(serve_factory: Callable[..., Running]) -> None:
    api = serve_factory(alert_sensitivity="high")
    keys = add_shifts(api)
    spikes = [a["key"] for a in listed(api, sensitivity="all") if a["kind"] == "spike"]
    assert len(spikes) == 3  # the fixture's older alerts (no level column in their file) stay listed
    default = listed(api)
    assert [a["key"] for a in default if a["kind"] == "shift"] == [keys["high"]]
    assert [a["key"] for a in default if a["kind"] == "spike"] == spikes
    assert {a["sensitivity"] for a in default} == {"high", None}
    for level in SENSITIVITIES:
        assert [a["key"] for a in listed(api, sensitivity=level) if a["kind"] == "shift"] == [keys[level]]
    assert sorted(a["key"] for a in listed(api, sensitivity="all") if a["kind"] == "shift") == sorted(keys.values())
    with api.client() as c:
        assert c.get("/alerts", params={"sensitivity": "paranoid"}).status_code == 422
        assert c.get(f"/alerts/{keys['low']}").json()["sensitivity"] == "low"  # one alert: any level


@pytest.mark.integration
def test_a_subscription_names_its_level_and_a_bad_one_is_refused(serve_factory: Callable[..., Running]) -> None:
    kafka_or_skip()
    api = serve_factory()
    spec = {"subscriber": "night-desk", "watch": WATCH, "channel": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/Z"}}
    with api.client() as c:
        made = c.post("/subscriptions", json={**spec, "sensitivity": "low"})
        assert made.status_code == 201, made.text
        assert c.get(f"/subscriptions/{made.json()['id']}").json()["sensitivity"] == "low"
        bad = c.post("/subscriptions", json={**spec, "subscriber": "other", "sensitivity": "paranoid"})
        assert bad.status_code == 422 and "sensitivity" in bad.text
        plain = c.post("/subscriptions", json={**spec, "subscriber": "day-desk"}).json()
        assert plain["sensitivity"] is None  # the deployment's level, applied by the notifier
