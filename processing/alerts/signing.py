"""Webhook signatures per the Standard Webhooks spec (https://www.standardwebhooks.com/).

Every request carries ``webhook-id`` (stable per alert and subscriber: the same on a retry and
after a restart, so a receiver drops repeats), ``webhook-timestamp`` (seconds, the time of this
attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). Signing
the timestamp with the body lets a receiver reject a captured request replayed later: it checks
the signature, then that the timestamp is within its tolerance (5 minutes in the spec's
libraries), then that it has not seen the id.

A secret written as ``whsec_<base64>`` (the spec's format, what its libraries generate) is the
decoded bytes; any other string is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
TOLERANCE_S = 300


class SignatureError(ValueError):
    """A webhook request that does not verify (reason in the message)."""


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a configured secret (``whsec_`` base64, else the string's bytes)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX):] + "==")
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a whsec_ secret must be base64") from exc
        if key:
            return key
        raise ValueError("a whsec_ secret must not be empty")
    return secret.encode("utf-8")


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` of one request."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one request."""
    return {
        ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, msg_id, timestamp, body),
    }


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: float, tolerance_s: float = TOLERANCE_S) -> str:
    """Check a received request as a receiver should; returns its id, raises SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sigs = (lower.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not (msg_id and stamp and sigs):
        raise SignatureError("missing webhook headers")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance (a replay, or a skewed clock)")
    expected = signature(key, msg_id, timestamp, body).encode("ascii")
    # several space-separated signatures may be sent while a secret rotates
    if not any(hmac.compare_digest(expected, s.encode("ascii", "replace")) for s in sigs.split()):
        raise SignatureError("no matching signature")
    return msg_id


def chart_signature(key: str, alert_key: str) -> str:
    """The signature of the public link to one alert's chart image (hex HMAC-SHA256 of the key):
    a chat service fetches the image without a login, and the link opens that chart only."""
    return hmac.new(secret_bytes(key), f"chart:{alert_key}".encode(), hashlib.sha256).hexdigest()


def chart_signature_ok(key: str, alert_key: str, signature: str) -> bool:
    """True when *signature* is the chart link's for *alert_key* (constant-time)."""
    return hmac.compare_digest(chart_signature(key, alert_key), signature)

