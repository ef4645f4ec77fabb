"""What an alert message carries: its chart (PNG, drawn from the alert's own evidence) and a link to
the alert's page in the workbench when its address is configured; feed text stays text."""

from __future__ import annotations

import dataclasses
import json

from framewatch.contracts import AlertItem
from framewatch.processing.alerts.chart import evidence_png
from framewatch.processing.alerts.delivery import email_message, slack_body, webhook_body
from framewatch.processing.alerts.subscriptions import Channel
from tests.helpers.alerts import alert

PUBLIC = "https://fw.example.org/"
MAIL = Channel("email", to=("desk@example.org",), sender="fw@example.org", smtp_host="127.0.0.1")


def test_the_chart_is_a_png_of_the_alerts_own_evidence() -> None:
    png = evidence_png(alert())
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_the_email_has_text_html_with_the_chart_inline_and_the_alerts_page() -> None:
    hostile = dataclasses.replace(alert(), top_items=(AlertItem("<script>alert(1)</script>", None, "O&O", "x < y"),))
    msg = email_message(hostile, MAIL, PUBLIC)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = "https://fw.example.org/ui/alerts/scs%3Asurveillance%3A"
    assert page in text
    html_part = msg.get_body(("html",))
    assert html_part is not None
    html = html_part.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'src="cid:chart"' in html and page in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "O&amp;O" in html
    (image,) = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<chart>" and image.get_content().startswith(b"\x89PNG")


def test_without_an_address_messages_carry_no_link() -> None:
    msg = email_message(alert(), MAIL)
    assert "/ui/alerts/" not in msg.as_string()
    assert "alert_url" not in json.loads(webhook_body(alert(), "desk"))
    assert "/ui/alerts/" not in json.loads(slack_body(alert()))["text"]


def test_slack_and_webhooks_link_the_alerts_page() -> None:
    text = json.loads(slack_body(alert(), PUBLIC))["text"]
    assert "<https://fw.example.org/ui/alerts/scs%3Asurveillance%3A" in text and "|Open the alert" in text
    body = json.loads(webhook_body(alert(), "desk", PUBLIC))
    assert body["alert_url"].startswith("https://fw.example.org/ui/alerts/scs%3Asurveillance%3A")


def test_a_shift_is_told_with_its_change_point_shares_and_rate() -> None:
    from datetime import timedelta

    base = alert()
    shift = dataclasses.replace(base, kind="shift", change_point=base.window_start - timedelta(hours=3), share_before=0.2,
                                share_after=0.31, share_after_low=0.27, share_after_high=0.35, detector="binomial_cusum",
                                false_alarm_rate_per_week=1 / 32, delay_s=7200.0)
    text = json.loads(slack_body(shift))["text"]
    assert "surveillance shifted up: 20% -&gt; 31% (90%: 27%-35%) since" in text
    assert "found 2.0 h later by binomial_cusum, about 1 false alarm in 32 weeks" in text
    assert email_message(shift, MAIL)["Subject"].startswith("framewatch shift: surveillance")
    assert "(spike: share_spike" in json.loads(slack_body(base))["text"]


def test_a_fall_is_told_as_a_fall_in_the_text_and_the_subject() -> None:
    from datetime import timedelta

    base = alert()
    fall = dataclasses.replace(base, kind="shift", change_point=base.window_start - timedelta(hours=3), share_before=0.3,
                               share_after=0.18, share_after_low=0.15, share_after_high=0.21, detector="binomial_cusum",
                               false_alarm_rate_per_week=1 / 32, delay_s=3600.0, sensitivity="low")
    text = json.loads(slack_body(fall))["text"]
    assert "surveillance shifted down: 30% -&gt; 18%" in text and "(low sensitivity)" in text
    assert " falling in " in email_message(fall, MAIL)["Subject"]
    assert " rising in " in email_message(dataclasses.replace(fall, share_after=0.4), MAIL)["Subject"]
