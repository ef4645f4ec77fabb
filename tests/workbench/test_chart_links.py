"""Slack shows an alert's chart from a signed public link: the image needs no login (a chat service
fetches it) but opens only with the signature of that alert's key, and only where a key is set."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from framewatch.contracts import Alert
from framewatch.processing.alerts.delivery import slack_body
from framewatch.processing.alerts.signing import chart_signature
from tests.helpers.alerts import alert
from tests.workbench import lake as workbench_lake
from tests.workbench.conftest import Workbench, serve_workbench

KEY = "chart-links-test-key"


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[Workbench]:
    """The workbench with chart links signed by KEY."""
    yield from serve_workbench(tmp_path, chart_link_key=KEY)


def image_url(body: bytes) -> str:
    """The image block's URL of a Slack body."""
    (image,) = [b for b in json.loads(body)["blocks"] if b["type"] == "image"]
    return str(image["image_url"])


def test_slack_carries_the_chart_only_when_links_are_signed() -> None:
    a: Alert = alert()
    assert "blocks" not in json.loads(slack_body(a, "https://fw.example.org"))
    assert "blocks" not in json.loads(slack_body(a, None, KEY))  # no address: nowhere to link
    body = json.loads(slack_body(a, "https://fw.example.org/", KEY))
    assert body["text"].startswith("*framewatch*") and body["blocks"][0]["text"]["text"] == body["text"]
    url = urllib.parse.urlsplit(image_url(slack_body(a, "https://fw.example.org/", KEY)))
    assert url.path == f"/ui/charts/{urllib.parse.quote(a.key, safe='')}.png"
    assert urllib.parse.parse_qs(url.query)["sig"] == [chart_signature(KEY, a.key)]


def test_the_signed_link_opens_the_chart_without_a_login_and_nothing_else(signed: Workbench) -> None:
    key = workbench_lake.alert_key(signed.lake)
    quoted = urllib.parse.quote(key, safe="")
    with signed.client(None) as c:  # not signed in, as a chat service
        ok = c.get(f"/ui/charts/{quoted}.png", params={"sig": chart_signature(KEY, key)})
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
        assert ok.content.startswith(b"\x89PNG\r\n\x1a\n") and len(ok.content) > 2000
        other = "china-scs:surveillance:1999-01-01T00:00:00Z"
        assert c.get(f"/ui/charts/{quoted}.png", params={"sig": chart_signature("another key", key)}).status_code == 404
        assert c.get(f"/ui/charts/{quoted}.png").status_code == 404
        # a valid signature for another key does not open this one, and an unknown alert is 404 too
        assert c.get(f"/ui/charts/{quoted}.png", params={"sig": chart_signature(KEY, other)}).status_code == 404
        assert c.get(f"/ui/charts/{urllib.parse.quote(other, safe='')}.png",
                     params={"sig": chart_signature(KEY, other)}).status_code == 404


def test_without_a_key_no_chart_is_public(workbench: Workbench) -> None:
    key = workbench_lake.alert_key(workbench.lake)
    with workbench.client(None) as c:
        resp = c.get(f"/ui/charts/{urllib.parse.quote(key, safe='')}.png", params={"sig": chart_signature(KEY, key)})
        assert resp.status_code == 404
