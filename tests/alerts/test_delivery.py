"""Subscriptions file errors, HMAC signatures, retries and once-only delivery (no broker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from framewatch.contracts import Alert
from framewatch.errors import ConfigError
from framewatch.metrics import NotifyMetrics
from framewatch.processing.alerts.delivery import (
    DeliveryLog,
    Notifier,
    backoff_delays,
    deliver_with_retries,
    slack_body,
)
from framewatch.processing.alerts.subscriptions import (
    Channel,
    Subscription,
    load_subscriptions,
    matches,
)
from tests.helpers.alerts import alert

ENV = {"HOOK_SECRET": "s3cret", "SMTP_PW": "pw"}

GOOD = """\
subscriptions:
  - subscriber: desk
    watch: scs
    frames: [surveillance]
    min_score: 4
    channel:
      type: webhook
      url: http://127.0.0.1:9/hook
      secret_env: HOOK_SECRET
  - subscriber: newsroom
    watch: "*"
    channel: {type: slack, url: "https://hooks.slack.com/services/T/B/X"}
  - subscriber: analyst
    watch: scs
    frames: any
    rules: [emergent_growth]
    channel:
      type: email
      to: a@example.org
      from: fw@example.org
      smtp_host: 127.0.0.1
      smtp_port: 2525
      username: fw
      password_env: SMTP_PW
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subs.yaml"
    path.write_text(text)
    return path


def test_good_file_loads(tmp_path: Path) -> None:
    subs = load_subscriptions(write(tmp_path, GOOD), ENV)
    assert [s.subscriber for s in subs] == ["desk", "newsroom", "analyst"]
    assert subs[0].channel.secret == b"s3cret" and subs[0].frames == ("surveillance",)
    assert subs[1].frames is None and subs[1].watch == "*"
    assert subs[2].channel.to == ("a@example.org",) and subs[2].channel.password == "pw"


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("      url: http://127.0.0.1:9/hook", "      url: ftp://x", 8, "subscriptions[0].channel.url"),
        ("      type: webhook", "      type: pigeon", 7, "subscriptions[0].channel.type"),
        ("    min_score: 4", "    min_score: high", 5, "subscriptions[0].min_score"),
        ("      secret_env: HOOK_SECRET", "      secret_env: NOT_SET_ANYWHERE", 9, "subscriptions[0].channel.secret_env"),
        ("    frames: [surveillance]", "    frames: []", 4, "subscriptions[0].frames"),
        ("    frames: any\n", "    frames: any\n    colour: red\n", 16, "subscriptions[2].colour"),
        ("      to: a@example.org", "      to: nobody", 19, "subscriptions[2].channel.to"),
        ("      smtp_port: 2525", "      smtp_port: 99999", 22, "subscriptions[2].channel.smtp_port"),
        ("    rules: [emergent_growth]", "    rules: [hunch]", 16, "subscriptions[2].rules"),
        ("  - subscriber: analyst\n    watch: scs", '  - subscriber: newsroom\n    watch: "*"', 13, "subscriptions[2].subscriber"),
    ],
)
def test_bad_file_names_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, field: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_subscriptions(path, ENV)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: field '{field}'"), message


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("", 1, "subscriptions"),
        ("subscriptions: [\n", 2, "(document)"),
        ("subs: []\n", 1, "(document).subs"),
        ("subscriptions:\n  - watch: scs\n    channel: {type: slack, url: 'http://x'}\n", 2, "subscriptions[0].subscriber"),
        ("subscriptions: nope\n", 1, "subscriptions"),
    ],
)
def test_structural_errors(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}:{line}: field '{field}'")):
        load_subscriptions(path, ENV)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_subscriptions(tmp_path / "absent.yaml", ENV)


def test_matching() -> None:
    ch = Channel("slack", url="http://x")
    sub = Subscription("s", "scs", ("surveillance",), 4.0, ch)
    assert matches(sub, alert())
    assert not matches(sub, alert(score=3.9))
    assert not matches(sub, alert(frame="trust"))
    assert not matches(sub, alert(watch="other"))
    assert matches(Subscription("s", "*", None, 0, ch), alert(watch="other", frame="emergent:3"))
    assert not matches(Subscription("s", "*", None, 0, ch, rules=("emergent_growth",)), alert())


def test_slack_body_has_text_with_evidence() -> None:
    import json

    text = json.loads(slack_body(alert()))["text"]
    assert "surveillance" in text and "<http://127.0.0.1/1|Title>" in text


def test_backoff_and_retries() -> None:
    assert backoff_delays(4, 0.5) == [0.5, 1.0, 2.0]
    slept: list[float] = []
    calls = iter([RuntimeError("down"), RuntimeError("down"), None])

    def attempt() -> None:
        exc = next(calls)
        if exc:
            raise exc

    assert deliver_with_retries(attempt, 4, 0.5, slept.append) == (True, 3, None)
    assert slept == [0.5, 1.0]
    ok, tries, error = deliver_with_retries(lambda: (_ for _ in ()).throw(OSError("refused")), 3, 0.1, slept.append)
    assert (ok, tries) == (False, 3) and error == "OSError: refused"


def test_notifier_delivers_once_even_after_restart_and_isolates_failures(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = NotifyMetrics(registry)
    good = Subscription("good", "scs", None, 0, Channel("slack", url="http://good"))
    bad = Subscription("bad", "scs", None, 0, Channel("slack", url="http://bad"))
    sent: list[tuple[str, str]] = []

    def sender(a: Alert, sub: Subscription, timeout: float) -> None:
        if sub.subscriber == "bad":
            raise ConnectionError("unreachable")
        sent.append((a.key, sub.subscriber))

    db = tmp_path / "d.sqlite3"
    notifier = Notifier([good, bad], DeliveryLog(db), metrics, max_attempts=3, backoff_base_s=0,
                        failing_after=1, sender=sender, sleep=lambda s: None)
    outcomes = notifier.handle([alert()])
    assert sorted((o.subscriber, o.status, o.attempts) for o in outcomes) == [("bad", "failed", 3), ("good", "delivered", 1)]
    assert sent == [(alert().key, "good")]
    assert registry.get_sample_value("framewatch_subscriber_failing", {"subscriber": "bad"}) == 1
    notifier.close()
    again = Notifier([good, bad], DeliveryLog(db), metrics, max_attempts=3, backoff_base_s=0,
                     failing_after=1, sender=sender, sleep=lambda s: None)
    outcomes = again.handle([alert()])
    assert sent == [(alert().key, "good")]  # not delivered twice across a restart
    assert {o.subscriber: o.status for o in outcomes} == {"good": "duplicate", "bad": "failed"}
    g = registry.get_sample_value
    assert g("framewatch_notifications_total", {"channel": "slack", "outcome": "delivered"}) == 1
    assert g("framewatch_notifications_total", {"channel": "slack", "outcome": "failed"}) == 2
    assert g("framewatch_notifications_total", {"channel": "slack", "outcome": "duplicate"}) == 1
    rows = DeliveryLog(db).rows()
    assert [(r[1], r[3]) for r in rows] == [("bad", "failed"), ("good", "delivered")]
    again.close()
