"""Digests against alert fatigue: a subscription with ``digest: daily`` or ``weekly`` gets one
message per period (UTC days; weeks from Monday), listing each change with its chart, instead of
one message per alert.

Only the alerts the subscription matches are queued (its watch, frames, kinds and sensitivity: a
shift or drift of another level never enters its digest). They are queued in SQLite (written
before the batch's offsets are committed, so a restart loses none and a re-read alert is queued
once); once a period has ended the notifier sends it (from its idle turns) and marks it sent,
also in SQLite, so each period goes out once.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from framewatch import contracts
from framewatch.contracts import Alert
from framewatch.processing.alerts.chart import evidence_png
from framewatch.processing.alerts.delivery import (
    DeliveryError,
    Notifier,
    alert_url,
    deliver_with_retries,
    durable_db,
    post_within,
    redact,
    slack_escape,
    slack_link,
    smtp_send,
    summary,
)
from framewatch.processing.alerts.signing import signed_headers
from framewatch.processing.alerts.subscriptions import Subscription
from framewatch.timeutil import format_utc, parse_utc

log = logging.getLogger(__name__)

DAYS = {"daily": 1, "weekly": 7}
CHARTS_MAX = 20  # charts inlined in one e-mail; the rest are listed without


def period_of(when: datetime, digest: str) -> tuple[datetime, datetime]:
    """The [start, end) period of *digest* that holds *when*."""
    start = when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if digest == "weekly":
        start -= timedelta(days=start.weekday())
    return start, start + timedelta(days=DAYS[digest])


@dataclass(frozen=True, slots=True)
class Digest:
    """One subscriber's changes of one period, oldest first."""

    subscriber: str
    kind: str  # daily | weekly
    start: datetime
    end: datetime
    alerts: tuple[Alert, ...]

    @property
    def delivery_id(self) -> str:
        """Stable per subscriber and period (a receiver drops a repeat by it)."""
        return contracts.stable_id("digest", self.subscriber, self.kind, format_utc(self.start))


class DigestBook:
    """SQLite queue of digest alerts by (subscriber, period), and the periods sent."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = durable_db(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS queued (subscriber TEXT NOT NULL, alert_key TEXT NOT NULL,"
                         " kind TEXT NOT NULL, start TEXT NOT NULL, end TEXT NOT NULL, alert BLOB NOT NULL,"
                         " PRIMARY KEY (subscriber, alert_key))")
        self._db.execute("CREATE TABLE IF NOT EXISTS sent (subscriber TEXT NOT NULL, kind TEXT NOT NULL,"
                         " start TEXT NOT NULL, PRIMARY KEY (subscriber, kind, start))")

    def add(self, sub: Subscription, alert: Alert) -> bool:
        """Queue *alert* in *sub*'s digest of the period it was detected in; False when already queued."""
        assert sub.digest is not None
        start, end = period_of(alert.detected_at, sub.digest)
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO queued VALUES (?,?,?,?,?,?)",
                                   (sub.subscriber, alert.key, sub.digest, format_utc(start), format_utc(end),
                                    contracts.encode(alert)))
        return cur.rowcount == 1

    def due(self, now: datetime) -> list[Digest]:
        """Digests whose period has ended by *now* and that were not sent yet."""
        with self._lock:
            rows = self._db.execute(
                "SELECT q.subscriber, q.kind, q.start, q.end, q.alert FROM queued q LEFT JOIN sent s"
                " ON s.subscriber = q.subscriber AND s.kind = q.kind AND s.start = q.start"
                " WHERE s.start IS NULL AND q.end <= ?"
                " ORDER BY q.subscriber, q.start", (format_utc(now),)).fetchall()
        grouped: dict[tuple[str, str, str, str], list[Alert]] = {}
        for subscriber, kind, start, end, raw in rows:
            grouped.setdefault((subscriber, kind, start, end), []).append(contracts.decode(Alert, raw))
        return [Digest(s, k, parse_utc(a), parse_utc(b), tuple(sorted(alerts, key=lambda x: (x.detected_at, x.key))))
                for (s, k, a, b), alerts in grouped.items()]

    def mark_sent(self, digest: Digest) -> None:
        """Record that *digest* went out (it is never sent again)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO sent VALUES (?,?,?)",
                             (digest.subscriber, digest.kind, format_utc(digest.start)))

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def title(digest: Digest) -> str:
    """The digest's headline."""
    n = len(digest.alerts)
    return (f"framewatch {digest.kind} digest for {digest.subscriber}: {n} change{'s' if n != 1 else ''}, "
            f"{digest.start:%Y-%m-%d} to {digest.end - timedelta(seconds=1):%Y-%m-%d}")


def webhook_body(digest: Digest, public_url: str | None = None) -> bytes:
    """JSON body of a digest webhook: the period and every alert with its evidence."""
    payload = {"delivery_id": digest.delivery_id, "subscriber": digest.subscriber, "digest": {
        "kind": digest.kind, "period_start": format_utc(digest.start), "period_end": format_utc(digest.end),
        "alerts": [{**contracts.to_dict(a), **({"alert_url": u} if (u := alert_url(a, public_url)) else {})}
                   for a in digest.alerts]}}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def slack_body(digest: Digest, public_url: str | None = None) -> bytes:
    """One Slack message listing each change (feed text escaped), each linked to its page when known."""
    lines = [f"*{slack_escape(title(digest))}*"]
    for a in digest.alerts:
        url = alert_url(a, public_url)
        lines.append(f"• {slack_escape(summary(a))}" + (f" {slack_link(url, 'open')}" if url else ""))
    return json.dumps({"text": "\n".join(lines)}, ensure_ascii=False).encode("utf-8")


def email_message(digest: Digest, sub: Subscription, public_url: str | None = None) -> EmailMessage:
    """The digest e-mail: text, and HTML with each change's small chart inline."""
    ch = sub.channel
    msg = EmailMessage()
    msg["Subject"] = title(digest)
    msg["From"] = ch.sender or ""
    msg["To"] = ", ".join(ch.to)
    text = [title(digest), ""]
    for a in digest.alerts:
        url = alert_url(a, public_url)
        text.append(f"- {summary(a)}" + (f"\n  {url}" if url else ""))
    msg.set_content("\n".join(text))
    charts: list[bytes] = []
    rows = []
    for a in digest.alerts:
        png = evidence_png(a, scale=1.0) if len(charts) < CHARTS_MAX else None
        url = alert_url(a, public_url)
        link = f' <a href="{html.escape(url)}">open</a>' if url else ""
        img = f'<br><img src="cid:chart{len(charts)}" alt="{html.escape(a.frame)}: share against baseline">' if png else ""
        if png:
            charts.append(png)
        rows.append(f"<li>{html.escape(summary(a))}{link}{img}</li>")
    msg.add_alternative(f"<h1>{html.escape(title(digest))}</h1><ul>{''.join(rows)}</ul>", subtype="html")
    part = msg.get_body(("html",))
    if isinstance(part, EmailMessage):
        for i, png in enumerate(charts):
            part.add_related(png, "image", "png", cid=f"<chart{i}>")
    return msg


def send_digest(digest: Digest, sub: Subscription, timeout_s: float, public_url: str | None = None) -> None:
    """Deliver *digest* over *sub*'s channel once; raises on any failure."""
    ch = sub.channel
    if ch.type == "email":
        smtp_send(email_message(digest, sub, public_url), ch, timeout_s)
        return
    body = webhook_body(digest, public_url) if ch.type == "webhook" else slack_body(digest, public_url)
    headers = {"Content-Type": "application/json"}
    if ch.secret is not None:
        headers |= signed_headers(ch.secret, digest.delivery_id, int(datetime.now(UTC).timestamp()), body)
    status = post_within(ch.url or "", body, headers, timeout_s)
    if status >= 300:
        raise DeliveryError(f"HTTP {status}")


def flush(book: DigestBook, notifier: Notifier, now: datetime, public_url: str | None = None) -> int:
    """Send every digest due by *now* through *notifier*'s subscriptions, retries and metrics;
    returns how many went out. One whose subscription is gone is dropped (logged); one that fails
    stays due and is tried again on a later turn."""
    subs = {(s.subscriber, s.digest): s for s in notifier.subscriptions if s.digest is not None}
    sent = 0
    for digest in book.due(now):
        sub = subs.get((digest.subscriber, digest.kind))
        if sub is None:
            log.warning("digest of %s (%s) dropped: the subscription is gone", digest.subscriber, format_utc(digest.start))
            book.mark_sent(digest)
            continue
        ok, _, error = deliver_with_retries(lambda d=digest, s=sub: send_digest(d, s, notifier.timeout_s, public_url),
                                            notifier.max_attempts, notifier.backoff_base_s, notifier.sleep)
        if ok:
            book.mark_sent(digest)
            sent += 1
        else:
            log.warning("digest of %s failed, retried later: %s", digest.subscriber, redact(error or "failed", sub.channel))
        if notifier.metrics is not None:
            notifier.metrics.notifications.labels(sub.channel.type, "digest_delivered" if ok else "digest_failed").inc()
    return sent
