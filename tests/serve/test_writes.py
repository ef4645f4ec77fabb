"""Labels, promotions and subscriptions through the API, round-tripped through the real Kafka."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from framewatch.kafka_io import read_to_end
from framewatch.processing.alerts.live import SubscriptionFollower, subscription_id
from framewatch.processing.serve.subscriptions import SubscriptionBook
from framewatch.processing.serve.topics import TopicWriter
from framewatch.settings import CODEBOOK_CHANGES, LABELS, SUBSCRIPTIONS
from tests.serve.conftest import Running, kafka_or_skip

pytestmark = pytest.mark.integration

FILE = """subscriptions:
  - subscriber: policy-desk
    watch: china-scs
    frames: [surveillance]
    min_score: 4.0
    channel: {type: slack, url: "https://hooks.example.org/services/T/B/X"}
"""


def _latest(api: Running, logical: str) -> dict[str, object | None]:
    out: dict[str, object | None] = {}
    for key, value in read_to_end(api.ctx.settings, api.ctx.settings.topic(logical)):
        out[(key or b"").decode()] = None if value is None else json.loads(value)
    return out


@pytest.fixture
def kafka_api(serve_factory: Callable[..., Running], tmp_path: Path) -> Running:
    kafka_or_skip()
    path = tmp_path / "subscriptions.yaml"
    path.write_text(FILE, encoding="utf-8")
    return serve_factory(serve_subscriptions_file=path)


def _token(api: Running, name: str, role: str) -> str:
    with api.client() as c:
        return str(c.post("/tokens", json={"name": name, "role": role}).json()["token"])


def _analyst(api: Running) -> str:
    return _token(api, "ana", "analyst")


def test_labels_are_set_and_cleared_on_the_compacted_topic(kafka_api: Running) -> None:
    with kafka_api.client(_analyst(kafka_api)) as c:
        put = c.put("/items/china-scs:item001/segments/1/label", json={"frame": "trade"})
        assert put.status_code == 200, put.text
        assert c.put("/items/china-scs:item001/segments/7/label", json={"frame": "trade"}).status_code == 404
        labels = _latest(kafka_api, LABELS)
        assert labels["china-scs:item001#1"] == {"item_key": "china-scs:item001", "segment_index": 1, "frame": "trade",
                                                  "by": "ana", "at": labels["china-scs:item001#1"]["at"]}  # type: ignore[index]
        cleared = c.delete("/items/china-scs:item001/segments/1/label").json()
    assert cleared["frame"] is None and cleared["by"] == "ana"
    assert _latest(kafka_api, LABELS)["china-scs:item001#1"]["frame"] is None  # type: ignore[index]


def test_promotion_without_a_codebook_is_recorded_on_the_topic(kafka_api: Running) -> None:
    with kafka_api.client(_analyst(kafka_api)) as c:
        body = c.post("/clusters/emergent:1/promote", json={"watch": "china-scs", "frame_id": "patrols",
                                                            "label": "Patrols"}).json()
    assert body["mode"] == "recorded" and body["topic"] == kafka_api.ctx.settings.topic(CODEBOOK_CHANGES)
    record = _latest(kafka_api, CODEBOOK_CHANGES)["china-scs:emergent:1"]
    assert record["frame_id"] == "patrols" and record["size"] == 3 and record["by"] == "ana"  # type: ignore[index]


def test_subscriptions_round_trip_through_the_topic(kafka_api: Running) -> None:
    file_id = subscription_id("policy-desk", "china-scs")
    new = {"subscriber": "newsroom", "watch": "*", "min_score": 1.5, "rules": ["share_spike"],
           "channel": {"type": "email", "to": ["a@example.org"], "from": "fw@example.org", "smtp_host": "smtp.example.org"}}
    with kafka_api.client() as c:
        start = c.get("/subscriptions").json()
        assert [(s["id"], s["source"], s["min_score"]) for s in start["subscriptions"]] == [(file_id, "file", 4.0)]
        created = c.post("/subscriptions", json=new)
        assert created.status_code == 201, created.text
        new_id = created.json()["id"]
        assert c.post("/subscriptions", json=new).status_code == 409
        edited = c.put(f"/subscriptions/{new_id}", json={**new, "min_score": 3.0}).json()
        assert edited["min_score"] == 3.0 and edited["channel"]["from"] == "fw@example.org"
        assert c.delete(f"/subscriptions/{file_id}").status_code == 200
        assert c.get(f"/subscriptions/{file_id}").status_code == 404
        bad = c.post("/subscriptions", json={**new, "subscriber": "hooky",
                                             "channel": {"type": "webhook", "url": "https://h.example.org/x"}})
        assert bad.status_code == 400 and "secret_env" in bad.json()["detail"]
    # a fresh reader (a restart) sees the same state: the file, overlaid with the topic
    writer = TopicWriter(kafka_api.ctx.settings)
    try:
        again = SubscriptionBook(writer, kafka_api.ctx.settings.serve_subscriptions_file)
        assert [(s["id"], s["min_score"]) for s in again.list()] == [(new_id, 3.0)]
        # what the notifier delivers to: the same, as its own Subscription records
        stop = threading.Event()
        follower = SubscriptionFollower(kafka_api.ctx.settings, kafka_api.ctx.settings.serve_subscriptions_file, {},
                                        lambda subs, rejected: None)
        live = follower.start(stop)
        stop.set()
        assert [(s.subscriber, s.watch, s.min_score, s.rules, s.channel.to) for s in live] == [
            ("newsroom", "*", 3.0, ("share_spike",), ("a@example.org",))]
    finally:
        writer.close()
    assert _latest(kafka_api, SUBSCRIPTIONS)[file_id] is None  # a tombstone


class _Receiver(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.got
    server.shutdown()
    server.server_close()


def test_a_test_alert_goes_through_the_notifiers_delivery(kafka_api: Running, receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url, got = receiver
    monkeypatch.setenv("FW_TEST_HOOK_SECRET", "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=")
    sub = {"subscriber": "hook", "watch": "china-scs",
           "channel": {"type": "webhook", "url": url, "secret_env": "FW_TEST_HOOK_SECRET"}}
    dead = {**sub, "subscriber": "dead", "channel": {**sub["channel"], "url": "http://127.0.0.1:9/hook"}}  # type: ignore[dict-item]
    with kafka_api.client() as c:
        sub_id = c.post("/subscriptions", json=sub).json()["id"]
        dead_id = c.post("/subscriptions", json=dead).json()["id"]
        ok = c.post(f"/subscriptions/{sub_id}/test").json()
        failed = c.post(f"/subscriptions/{dead_id}/test").json()
    assert ok == {"subscription": sub_id, "delivered": True, "error": None}
    assert len(got) == 1
    headers, body = got[0]
    payload = json.loads(body)
    assert payload["subscriber"] == "hook" and payload["alert"]["rule"] == "test"
    assert headers["webhook-signature"].startswith("v1,")
    assert failed["delivered"] is False and failed["error"]


def _all_entries(client: Any) -> list[dict[str, Any]]:
    """Every queue entry of china-scs, page after page."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"watch": "china-scs"}
    while True:
        body = client.get("/queue", params=params).json()
        out += body["entries"]
        if body["next_page_token"] is None:
            return out
        params["page_token"] = body["next_page_token"]


def test_the_queue_offers_the_least_sure_passages_first_and_forgets_answered_ones(kafka_api: Running) -> None:
    analyst = _analyst(kafka_api)
    with kafka_api.client() as admin, kafka_api.client(analyst) as c:
        first = admin.get("/queue", params={"watch": "china-scs"}).json()
        entries = _all_entries(admin)
        assert len(entries) == first["total"] > 40
        # in turns over the frames (the least labelled first), each frame's least sure passage first
        by_frame: dict[str, list[float]] = {}
        for e in entries:
            by_frame.setdefault(e["top"][0]["frame"], []).append(e["margin"])
        assert all(m == sorted(m) for m in by_frame.values()) and min(e["margin"] for e in entries) == 0.0
        assert len({e["top"][0]["frame"] for e in entries[:len(by_frame)]}) == len(by_frame) > 1
        assert all(e["watch_id"] == "china-scs" for e in entries)
        keys = {(e["item_key"], e["segment_index"]) for e in entries}
        # reprints are not offered: item004, 007 and 010 are copies of item001
        assert not {k for k, _ in keys} & {"china-scs:item004", "china-scs:item007", "china-scs:item010"}
        top, second = entries[0], entries[1]
        assert c.put(f"/items/{top['item_key']}/segments/{top['segment_index']}/label", json={"frame": "none"}).status_code == 200
        skipped = c.post(f"/items/{second['item_key']}/segments/{second['segment_index']}/skip")
        assert skipped.status_code == 200 and skipped.json()["skipped"] is True
        after = _all_entries(admin)
        assert {(e["item_key"], e["segment_index"]) for e in after} == keys - {
            (top["item_key"], top["segment_index"]), (second["item_key"], second["segment_index"])}
    viewer = _token(kafka_api, "vic", "viewer")
    with kafka_api.client(viewer) as v:
        assert v.get("/queue").status_code == 200  # a viewer sees the queue, answering needs an analyst
        assert v.post(f"/items/{top['item_key']}/segments/0/skip").status_code == 403


def test_labels_export_as_training_data(kafka_api: Running) -> None:
    with kafka_api.client(_analyst(kafka_api)) as c:
        assert c.put("/items/china-scs:item001/segments/0/label", json={"frame": "military"}).status_code == 200
        assert c.put("/items/china-scs:item003/segments/1/label", json={"frame": "none"}).status_code == 200
        assert c.post("/items/china-scs:item005/segments/0/skip").status_code == 200
        assert c.put("/items/climate:item032/segments/0/label", json={"frame": "trade"}).status_code == 200
        got = c.get("/labels/export", params={"watch": "china-scs"})
        everything = c.get("/labels/export")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in got.text.splitlines()]
    assert [(r["id"], r["labels"], r["watch_id"]) for r in rows] == [
        ("china-scs:item001#0", ["military"], "china-scs"), ("china-scs:item003#1", [], "china-scs")]
    assert rows[0]["text"] == "passage 1 about trade" and rows[1]["text"] == "second passage 3" and rows[0]["by"] == "ana"
    assert len(everything.text.splitlines()) == 3  # the skip is left out
    with kafka_api.client() as admin:
        viewer = admin.post("/tokens", json={"name": "vee", "role": "viewer"}).json()["token"]
    with kafka_api.client(viewer) as v:
        assert v.get("/labels/export").status_code == 403  # training data is for analysts
