"""Notifications: deliver alerts to subscribers, once each, with retries and a delivery log.

Once per (alert key, subscriber): the SQLite delivery log under ``state_dir`` records every
successful delivery before the notifier's offsets are committed, and a delivery already in the
log is never made again, also after a restart. The at-least-once edge: a crash after the
receiver accepted a delivery but before the log row is written repeats that one delivery; every
webhook request carries the Standard Webhooks ``webhook-id`` (stable per alert and subscriber)
and a signature over id, timestamp and body (:mod:`.signing`), so a receiver can drop the repeat
and reject a replay.

Every delivery has a total deadline (``timeout_s``, connect to last byte: a slow-drip endpoint is
cut off) and reads at most ``MAX_RESPONSE_BYTES`` of the answer. E-mail goes over verified TLS
(STARTTLS, or implicit TLS on 465) unless the channel says ``tls: none``, and never logs in
without TLS. Slack text is escaped: a feed title cannot ping ``<!channel>`` or dress up a link.
Errors are logged with the channel's URL and secrets taken out.

Each delivery is retried with exponential backoff; one that still fails is logged as failed and
counted, and after ``failing_after`` failures in a row the subscriber is reported failing
(metric and log) and gets a single attempt per alert until it succeeds again. Deliveries run
in parallel, so a slow or dead endpoint never holds up the others.
"""

from __future__ import annotations

import html
import json
import logging
import smtplib
import sqlite3
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.metrics import NotifyMetrics
from framewatch.processing.alerts.chart import evidence_png
from framewatch.processing.alerts.signing import chart_signature, signed_headers
from framewatch.processing.alerts.subscriptions import Channel, Subscription, matches
from framewatch.timeutil import format_utc, utcnow

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 65_536  # a receiver's answer is not ours to store: read this much at most


class DeliveryError(RuntimeError):
    """A delivery the receiver did not accept (status, deadline, TLS policy)."""


def delivery_id(alert_key: str, subscriber: str) -> str:
    """Stable id of one alert's delivery to one subscriber (for receivers' dedup)."""
    return contracts.stable_id(alert_key, subscriber)


def alert_url(alert: Alert, public_url: str | None) -> str | None:
    """The alert's page in the workbench, when the workbench's public address is configured."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/ui/alerts/{urllib.parse.quote(alert.key, safe='')}"


def chart_url(alert: Alert, public_url: str | None, chart_key: str | None) -> str | None:
    """The signed public address of the alert's chart image, when both are configured."""
    if not public_url or not chart_key:
        return None
    sig = chart_signature(chart_key, alert.key)
    return f"{public_url.rstrip('/')}/ui/charts/{urllib.parse.quote(alert.key, safe='')}.png?sig={sig}"


def webhook_body(alert: Alert, subscriber: str, public_url: str | None = None) -> bytes:
    """JSON body of a webhook: the alert with its evidence (and its page, when known)."""
    payload = {
        "delivery_id": delivery_id(alert.key, subscriber), "subscriber": subscriber,
        "alert": contracts.to_dict(alert),
    }
    if (url := alert_url(alert, public_url)) is not None:
        payload["alert_url"] = url
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def fell(alert: Alert) -> bool:
    """True for a change whose share went down (a shift down)."""
    return alert.share_after is not None and alert.share_before is not None and alert.share_after < alert.share_before


def summary(alert: Alert) -> str:
    """One-line human summary of an alert, in the words of its kind."""
    if alert.kind in ("shift", "drift") and alert.change_point is not None and alert.share_after is not None:
        before = alert.share_before if alert.share_before is not None else alert.baseline_share
        interval = (f" (90%: {alert.share_after_low:.0%}-{alert.share_after_high:.0%})"
                    if alert.share_after_low is not None and alert.share_after_high is not None else "")
        rate = (f", about 1 false alarm in {1 / alert.false_alarm_rate_per_week:.0f} weeks"
                if alert.false_alarm_rate_per_week else "")
        found = f" {alert.delay_s / 3600:.1f} h later" if alert.delay_s is not None else ""
        level = f" ({alert.sensitivity} sensitivity)" if alert.sensitivity else ""
        moved = ("shifted down" if fell(alert) else "shifted up") if alert.kind == "shift" else "is drifting up"
        return (f"[{alert.watch_id}] {alert.frame} {moved}: "
                f"{before:.0%} -> {alert.share_after:.0%}{interval} since {format_utc(alert.change_point)}, "
                f"found{found} by {alert.detector or alert.rule}{rate}{level}")
    return (
        f"[{alert.watch_id}] {alert.frame}: {alert.observed_share:.0%} of {alert.window_items} items "
        f"({alert.observed_count}) vs baseline {alert.baseline_share:.0%}, score {alert.score:.1f} "
        f"({alert.kind}: {alert.rule}, {format_utc(alert.window_start)}..{format_utc(alert.window_end)})"
    )


def slack_escape(text: str) -> str:
    """Text as Slack shows it literally: ``&``, ``<`` and ``>`` escaped (Slack's own rule), so a
    stranger's title cannot write ``<!channel>``, ``<@U123>`` or ``<https://evil|bank.com>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    """A Slack link whose URL cannot close the link early or add a label of its own."""
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")
    if not safe_url.lower().startswith(("http://", "https://")):
        return slack_escape(f"{label} ({url})")  # only web links are made clickable
    return f"<{safe_url}|{slack_escape(label)}>"


def slack_body(alert: Alert, public_url: str | None = None, chart_key: str | None = None) -> bytes:
    """Slack-compatible incoming-webhook body (every value from a feed escaped); the alert's page
    (chart, evidence, items) linked when the workbench's address is known, and its chart shown as
    an image block when chart links are signed (``text`` stays the whole message: the
    notification's preview, and what clients without blocks show)."""
    text = slack_text(alert, public_url)
    image = chart_url(alert, public_url, chart_key)
    if image is None:
        return json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
              {"type": "image", "image_url": image, "alt_text": f"share of {alert.frame[:200]} against its baseline"}]
    return json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False).encode("utf-8")


def slack_text(alert: Alert, public_url: str | None) -> str:
    """The message's text: summary, the alert's page and the top items."""
    lines = [f"*framewatch* {slack_escape(summary(alert))}"]
    if (url := alert_url(alert, public_url)) is not None:
        lines.append(slack_link(url, "Open the alert: chart, evidence and items"))
    for item in alert.top_items:
        title = item.title or item.url or "(untitled)"
        link = slack_link(item.url, title) if item.url else slack_escape(title)
        outlet = slack_escape(item.outlet or "unknown outlet")
        lines.append(f"• {link} ({outlet}): {slack_escape((item.passage or '')[:200])}")
    return "\n".join(lines)


def email_message(alert: Alert, channel: Channel, public_url: str | None = None) -> EmailMessage:
    """The e-mail of an alert: text, and an HTML part with its chart inline and a link to its page."""
    msg = EmailMessage()
    msg["Subject"] = (f"framewatch {alert.kind}: {alert.frame} {'falling' if fell(alert) else 'rising'} in {alert.watch_id} "
                      f"(score {alert.score:.1f})")
    msg["From"] = channel.sender or ""
    msg["To"] = ", ".join(channel.to)
    url = alert_url(alert, public_url)
    body = [summary(alert), *([f"Open the alert: {url}"] if url else []), ""]
    for item in alert.top_items:
        body += [f"- {item.title or '(untitled)'} ({item.outlet or 'unknown outlet'})", f"  {item.url or ''}",
                 f"  {(item.passage or '')[:300]}", ""]
    msg.set_content("\n".join(body))
    png = evidence_png(alert)
    page = f'<p><a href="{html.escape(url)}">Open the alert: chart, evidence and items</a></p>' if url else ""
    items = "".join(f"<li>{html.escape(item.title or '(untitled)')} ({html.escape(item.outlet or 'unknown outlet')})"
                    f"<br>{html.escape((item.passage or '')[:300])}</li>" for item in alert.top_items)
    chart = '<p><img src="cid:chart" alt="share of the frame against its baseline"></p>' if png else ""
    msg.add_alternative(f"<p>{html.escape(summary(alert))}</p>{chart}{page}<ul>{items}</ul>", subtype="html")
    html_part = msg.get_body(("html",))
    if png and isinstance(html_part, EmailMessage):
        html_part.add_related(png, "image", "png", cid="<chart>")
    return msg


def tls_context(channel: Channel) -> ssl.SSLContext:
    """A verifying client context (system CAs, or the channel's ``ca_file``), TLS 1.2 or later."""
    ctx = ssl.create_default_context(cafile=channel.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send_email(alert: Alert, ch: Channel, timeout_s: float, public_url: str | None = None) -> None:
    """Send the alert's e-mail over the channel's TLS mode."""
    smtp_send(email_message(alert, ch, public_url), ch, timeout_s)


def smtp_send(msg: EmailMessage, ch: Channel, timeout_s: float) -> None:
    """Send *msg* over the channel's TLS mode; never log in over plain text."""
    host = ch.smtp_host or ""
    if ch.tls == "implicit":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, ch.smtp_port, timeout=timeout_s, context=tls_context(ch))
    else:
        smtp = smtplib.SMTP(host, ch.smtp_port, timeout=timeout_s)
    with smtp:
        if ch.tls == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryError("the server does not offer STARTTLS (set tls: none to send in clear)")
            smtp.starttls(context=tls_context(ch))
            smtp.ehlo()
        if ch.username and ch.password:
            if ch.tls == "none":  # the loader refuses this too; a second line of defence
                raise DeliveryError("refusing to log in without TLS")
            smtp.login(ch.username, ch.password)
        smtp.send_message(msg)


def post_within(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST with a total deadline (a watchdog closes the connection when it passes) and a bounded
    read of the answer; returns the status."""
    client = httpx.Client(timeout=timeout_s, follow_redirects=False)
    watchdog = threading.Timer(timeout_s, client.close)
    watchdog.daemon = True
    watchdog.start()
    started = time.monotonic()
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            return response.status_code
    except Exception as exc:
        if time.monotonic() - started >= timeout_s:
            raise DeliveryError(f"no answer within the {timeout_s:g} s deadline") from None
        raise DeliveryError(type(exc).__name__) from None  # httpx's text carries the URL
    finally:
        watchdog.cancel()
        client.close()


def send(alert: Alert, sub: Subscription, timeout_s: float, public_url: str | None = None,
         chart_key: str | None = None) -> None:
    """Deliver *alert* to *sub* once; raises on any failure (HTTP status >= 300 included).
    *public_url*: the workbench's address, for a link to the alert's page; *chart_key*: the key
    that signs the public link to its chart (Slack shows the image)."""
    ch = sub.channel
    if ch.type == "email":
        send_email(alert, ch, timeout_s, public_url)
        return
    body = (webhook_body(alert, sub.subscriber, public_url) if ch.type == "webhook"
            else slack_body(alert, public_url, chart_key))
    headers = {"Content-Type": "application/json"}
    if ch.secret is not None:
        # signed per attempt: the timestamp is this attempt's, the id the delivery's
        headers |= signed_headers(ch.secret, delivery_id(alert.key, sub.subscriber), int(time.time()), body)
    status = post_within(ch.url or "", body, headers, timeout_s)
    if status >= 300:
        raise DeliveryError(f"HTTP {status}")


def redact(text: str, channel: Channel) -> str:
    """*text* with the channel's URL, secret and password taken out (a Slack URL is a secret)."""
    for secret in (channel.url, channel.password, channel.secret.decode("utf-8", "replace") if channel.secret else None):
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def backoff_delays(attempts: int, base_s: float, cap_s: float = 30.0) -> list[float]:
    """Waits between *attempts* tries: base, 2 base, 4 base... capped."""
    return [min(cap_s, base_s * 2**i) for i in range(max(0, attempts - 1))]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one (alert, subscriber) delivery."""

    alert_key: str
    subscriber: str
    channel: str
    status: str  # delivered | failed | duplicate
    attempts: int
    error: str | None = None


def deliver_with_retries(
    attempt: Callable[[], None], attempts: int, base_s: float, sleep: Callable[[float], None] = time.sleep
) -> tuple[bool, int, str | None]:
    """Call *attempt* until it succeeds or *attempts* are spent; (ok, tries, last error)."""
    delays = backoff_delays(attempts, base_s)
    error = None
    for n in range(1, attempts + 1):
        try:
            attempt()
            return True, n, None
        except Exception as exc:  # any failure of a delivery is reported, never raised
            error = f"{type(exc).__name__}: {exc}"[:500]
            if n < attempts:
                sleep(delays[n - 1])
    return False, attempts, error


def durable_db(path: Path) -> sqlite3.Connection:
    """A SQLite database whose every write is on disk when the call returns (WAL, full sync): what
    the notifier writes before a batch's offsets are committed must survive a crash after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class DeliveryLog:
    """SQLite log of deliveries: (alert key, subscriber) -> status, attempts, last error."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = durable_db(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (alert_key TEXT NOT NULL, subscriber TEXT NOT NULL,"
            " channel TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT,"
            " updated_at TEXT NOT NULL, PRIMARY KEY (alert_key, subscriber))"
        )

    def delivered(self, alert_key: str, subscriber: str) -> bool:
        """True when this alert already reached this subscriber."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM deliveries WHERE alert_key=? AND subscriber=? AND status='delivered'",
                (alert_key, subscriber),
            ).fetchone()
        return row is not None

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write outcomes in one transaction (a delivered row is never downgraded)."""
        now = format_utc(utcnow())
        with self._lock:
            self._db.execute("BEGIN")
            for o in outcomes:
                if o.status == "duplicate":
                    continue
                self._db.execute(
                    "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?) ON CONFLICT(alert_key, subscriber) DO UPDATE"
                    " SET status=excluded.status, attempts=deliveries.attempts+excluded.attempts,"
                    " error=excluded.error, updated_at=excluded.updated_at WHERE deliveries.status!='delivered'",
                    (o.alert_key, o.subscriber, o.channel, o.status, o.attempts, o.error, now),
                )
            self._db.execute("COMMIT")

    def rows(self) -> list[tuple[str, str, str, str, int, str | None]]:
        """Every logged delivery (alert key, subscriber, channel, status, attempts, error)."""
        with self._lock:
            return list(self._db.execute(
                "SELECT alert_key, subscriber, channel, status, attempts, error FROM deliveries ORDER BY 1, 2"
            ))

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class Notifier:
    """Routes alerts to matching subscriptions and delivers each once."""

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        delivery_log: DeliveryLog,
        metrics: NotifyMetrics | None = None,
        *,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        timeout_s: float = 10.0,
        failing_after: int = 3,
        sender: Callable[[Alert, Subscription, float], None] = send,
        sleep: Callable[[float], None] = time.sleep,
        queue_digest: Callable[[Subscription, Alert], bool] | None = None,
    ) -> None:
        self.subscriptions = list(subscriptions)
        self.queue_digest = queue_digest  # digest subscriptions: queued, sent once their period ends
        self.log = delivery_log
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.timeout_s = timeout_s
        self.failing_after = failing_after
        self.sender = sender
        self.sleep = sleep
        self.failures_in_row: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="notify")

    def handle(self, alerts: Sequence[Alert]) -> list[Outcome]:
        """Deliver every (alert, matching subscriber) not delivered before; log the outcomes."""
        outcomes: list[Outcome] = []
        jobs = []
        seen: set[tuple[str, str]] = set()
        for alert in alerts:
            for sub in self.subscriptions:
                pair = (alert.key, sub.subscriber)
                if not matches(sub, alert):
                    continue
                if sub.digest is not None and self.queue_digest is not None:
                    if self.queue_digest(sub, alert):
                        self._count(sub.channel.type, "queued")
                    continue
                if pair in seen or self.log.delivered(*pair):
                    outcomes.append(Outcome(alert.key, sub.subscriber, sub.channel.type, "duplicate", 0))
                    self._count(sub.channel.type, "duplicate")
                    continue
                seen.add(pair)
                jobs.append(self._pool.submit(self._deliver, alert, sub))
        outcomes += [job.result() for job in jobs]
        self.log.record(outcomes)  # before the stage returns, hence before the commit
        return outcomes

    def _deliver(self, alert: Alert, sub: Subscription) -> Outcome:
        failing = self.failures_in_row.get(sub.subscriber, 0) >= self.failing_after
        attempts = 1 if failing else self.max_attempts
        started = time.perf_counter()
        ok, tries, error = deliver_with_retries(
            lambda: self.sender(alert, sub, self.timeout_s), attempts, self.backoff_base_s, self.sleep
        )
        error = redact(error, sub.channel) if error else error
        kind = sub.channel.type
        if self.metrics is not None:
            self.metrics.delivery_seconds.labels(kind).observe(time.perf_counter() - started)
        if tries > 1:
            self._count(kind, "retried", tries - 1)
        if ok:
            if failing:
                log.info("subscriber %s recovered", sub.subscriber)
            self.failures_in_row[sub.subscriber] = 0
            self._count(kind, "delivered")
            self._failing(sub.subscriber, False)
            return Outcome(alert.key, sub.subscriber, kind, "delivered", tries)
        n = self.failures_in_row[sub.subscriber] = self.failures_in_row.get(sub.subscriber, 0) + 1
        self._count(kind, "failed")
        log.warning("delivery of %s to %s failed after %d attempts: %s", alert.key, sub.subscriber, tries, error)
        if n >= self.failing_after:
            self._failing(sub.subscriber, True)
            log.error("subscriber %s is failing (%d deliveries in a row failed)", sub.subscriber, n)
        return Outcome(alert.key, sub.subscriber, kind, "failed", tries, error)

    def _count(self, channel: str, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(channel, outcome).inc(n)

    def _failing(self, subscriber: str, failing: bool) -> None:
        if self.metrics is not None:
            self.metrics.subscriber_failing.labels(subscriber).set(1 if failing else 0)

    def close(self) -> None:
        """Stop the delivery threads."""
        self._pool.shutdown(wait=True)
