"""The subscriptions file: who hears about which alerts, and how.

Example::

    subscriptions:
      - subscriber: policy-desk
        watch: china-scs            # or "*" for every watch
        frames: [surveillance]      # or "any" (the default)
        min_score: 4.0
        channel:
          type: webhook             # webhook | slack | email
          url: https://hooks.example.org/framewatch
          secret_env: POLICY_DESK_SECRET   # signing key (whsec_<base64> or any string), from this variable
      - subscriber: newsroom
        watch: china-scs
        kinds: [shift, drift]       # spike | shift | drift | emergent (default: every kind)
        sensitivity: high           # low | medium | high: which level's shifts and drifts (default:
                                    # FRAMEWATCH_ALERT_SENSITIVITY); spikes and emergent ones come at any
        digest: daily               # daily | weekly: one message a period listing each change
        channel: {type: slack, url: https://hooks.slack.com/services/T/B/X}
      - subscriber: analyst
        watch: "*"
        channel:
          type: email
          to: [analyst@example.org]
          from: framewatch@example.org
          smtp_host: smtp.example.org
          smtp_port: 587
          tls: starttls             # starttls (default) | implicit (default on 465) | none
          # ca_file: /etc/ssl/private-ca.pem   # a private CA; certificates are always verified
          username: framewatch
          password_env: FRAMEWATCH_SMTP_PASSWORD

Every error names the file, the line and the field (``ConfigError``), so start-up stops on it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framewatch.contracts import ANY, SENSITIVITIES, Alert
from framewatch.errors import ConfigError
from framewatch.processing.alerts.signing import secret_bytes

CHANNEL_TYPES = ("webhook", "slack", "email")
TLS_MODES = ("starttls", "implicit", "none")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Channel:
    """Where and how one subscriber is told."""

    type: str
    url: str | None = dataclasses.field(default=None, repr=False)  # a Slack webhook URL is itself a secret
    secret: bytes | None = dataclasses.field(default=None, repr=False)
    to: tuple[str, ...] = ()
    sender: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    tls: str = "starttls"  # starttls | implicit | none
    ca_file: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscriber's interest: a watch (or ``*``), frames (``None`` = any) and a least score."""

    subscriber: str
    watch: str
    frames: tuple[str, ...] | None
    min_score: float
    channel: Channel
    rules: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None  # spike, shift, drift, emergent; None = every kind
    digest: str | None = None  # daily | weekly: one message per period instead of one per alert
    sensitivity: str = "medium"  # low | medium | high: the level of the shifts and drifts it hears of


KINDS = ("spike", "shift", "drift", "emergent")
DIGESTS = ("daily", "weekly")


def matches(sub: Subscription, alert: Alert) -> bool:
    """True when *alert* is one *sub* asked for."""
    return (
        sub.watch in (ANY, alert.watch_id)
        and (sub.frames is None or alert.frame in sub.frames)
        and (sub.rules is None or alert.rule in sub.rules)
        and (sub.kinds is None or alert.kind in sub.kinds)
        and alert.sensitivity in (None, sub.sensitivity)  # spikes and emergent ones have no level
        and alert.score >= sub.min_score
    )


class _Doc:
    """A YAML document kept as nodes, so every value knows its line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.loader = yaml.SafeLoader(text)

    def fail(self, node: yaml.Node | None, field: str, why: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ConfigError(f"{self.path}:{line}: field '{field}': {why}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def fields(self, node: yaml.Node, field: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, field, "must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if key not in allowed:
                raise self.fail(key_node, f"{field}.{key}", f"unknown field (expected one of {sorted(allowed)})")
            if key in out:
                raise self.fail(key_node, f"{field}.{key}", "given twice")
            out[key] = value_node
        return out


def load_subscriptions(path: str | Path, env: Mapping[str, str] | None = None,
                       sensitivity: str = "medium") -> list[Subscription]:
    """Read and validate a subscriptions file; raises ConfigError naming file, line and field.
    *sensitivity* is the level of an entry that names none (FRAMEWATCH_ALERT_SENSITIVITY)."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read subscriptions file: {exc.strerror}") from exc
    doc = _Doc(path, text)
    try:
        root = doc.loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{path}:{line}: field '(document)': not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if root is None:
        raise ConfigError(f"{path}:1: field 'subscriptions': missing (the file is empty)")
    top = doc.fields(root, "(document)", {"subscriptions"})
    if "subscriptions" not in top:
        raise doc.fail(root, "subscriptions", "missing")
    seq = top["subscriptions"]
    if not isinstance(seq, yaml.SequenceNode):
        raise doc.fail(seq, "subscriptions", "must be a list")
    subs = [_subscription(doc, node, f"subscriptions[{i}]", env, sensitivity) for i, node in enumerate(seq.value)]
    seen: dict[str, int] = {}
    for i, sub in enumerate(subs):
        key = f"{sub.subscriber}/{sub.watch}"
        if key in seen:
            raise doc.fail(seq.value[i], f"subscriptions[{i}].subscriber",
                           f"{sub.subscriber!r} already subscribes to watch {sub.watch!r} (entry {seen[key]})")
        seen[key] = i
    return subs


def _subscription(doc: _Doc, node: yaml.Node, where: str, env: Mapping[str, str], sensitivity: str) -> Subscription:
    f = doc.fields(node, where, {"subscriber", "watch", "frames", "min_score", "rules", "kinds", "digest",
                                 "sensitivity", "channel"})
    for name in ("subscriber", "watch", "channel"):
        if name not in f:
            raise doc.fail(node, f"{where}.{name}", "missing")
    subscriber = _name(doc, f["subscriber"], f"{where}.subscriber")
    watch = doc.value(f["watch"])
    if watch != ANY:
        watch = _name(doc, f["watch"], f"{where}.watch")
    frames = None
    if "frames" in f:
        raw = doc.value(f["frames"])
        if raw not in ("any", ANY):
            if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
                raise doc.fail(f["frames"], f"{where}.frames", "must be 'any' or a non-empty list of frame ids")
            frames = tuple(raw)
    rules = None
    if "rules" in f:
        raw = doc.value(f["rules"])
        allowed = ("share_spike", "emergent_growth")
        if not isinstance(raw, list) or not raw or any(r not in allowed for r in raw):
            raise doc.fail(f["rules"], f"{where}.rules", f"must be a list drawn from {list(allowed)}")
        rules = tuple(raw)
    min_score = 0.0
    if "min_score" in f:
        raw = doc.value(f["min_score"])
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            raise doc.fail(f["min_score"], f"{where}.min_score", "must be a number >= 0")
        min_score = float(raw)
    kinds = None
    if "kinds" in f:
        raw = doc.value(f["kinds"])
        if not isinstance(raw, list) or not raw or any(k not in KINDS for k in raw):
            raise doc.fail(f["kinds"], f"{where}.kinds", f"must be a list drawn from {list(KINDS)}")
        kinds = tuple(raw)
    digest = None
    if "digest" in f:
        digest = doc.value(f["digest"])
        if digest not in DIGESTS:
            raise doc.fail(f["digest"], f"{where}.digest", f"must be one of {list(DIGESTS)} (or left out: each alert at once)")
    if "sensitivity" in f:
        sensitivity = doc.value(f["sensitivity"])
        if sensitivity not in SENSITIVITIES:
            raise doc.fail(f["sensitivity"], f"{where}.sensitivity",
                           f"{sensitivity!r} is not one of {list(SENSITIVITIES)} (or left out: the deployment's level)")
    channel = _channel(doc, f["channel"], f"{where}.channel", env)
    return Subscription(subscriber, watch, frames, min_score, channel, rules, kinds, digest, sensitivity)


def _channel(doc: _Doc, node: yaml.Node, where: str, env: Mapping[str, str]) -> Channel:
    f = doc.fields(node, where, {
        "type", "url", "secret_env", "to", "from", "smtp_host", "smtp_port", "starttls", "tls",
        "ca_file", "username", "password_env",
    })
    if "type" not in f:
        raise doc.fail(node, f"{where}.type", f"missing (one of {list(CHANNEL_TYPES)})")
    kind = doc.value(f["type"])
    if kind not in CHANNEL_TYPES:
        raise doc.fail(f["type"], f"{where}.type", f"{kind!r} is not one of {list(CHANNEL_TYPES)}")
    if kind in ("webhook", "slack"):
        if "url" not in f:
            raise doc.fail(node, f"{where}.url", "missing")
        url = doc.value(f["url"])
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            raise doc.fail(f["url"], f"{where}.url", f"{url!r} is not an http(s) URL")
        secret = None
        if "secret_env" in f:
            try:
                secret = secret_bytes(_env_value(doc, f["secret_env"], f"{where}.secret_env", env))
            except ValueError as exc:
                raise doc.fail(f["secret_env"], f"{where}.secret_env", str(exc)) from None
        elif kind == "webhook":
            raise doc.fail(node, f"{where}.secret_env", "missing: webhooks are signed (Standard Webhooks)")
        return Channel(type=kind, url=url, secret=secret)
    for name in ("to", "from", "smtp_host"):
        if name not in f:
            raise doc.fail(node, f"{where}.{name}", "missing")
    to = doc.value(f["to"])
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and _EMAIL.match(a) for a in to):
        raise doc.fail(f["to"], f"{where}.to", "must be an e-mail address or a list of them")
    sender = doc.value(f["from"])
    if not isinstance(sender, str) or not _EMAIL.match(sender):
        raise doc.fail(f["from"], f"{where}.from", f"{sender!r} is not an e-mail address")
    host = doc.value(f["smtp_host"])
    if not isinstance(host, str) or not host:
        raise doc.fail(f["smtp_host"], f"{where}.smtp_host", "must be a host name")
    port = doc.value(f["smtp_port"]) if "smtp_port" in f else 25
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise doc.fail(f.get("smtp_port"), f"{where}.smtp_port", "must be a port number")
    tls = _tls_mode(doc, f, where, port)
    ca_file = doc.value(f["ca_file"]) if "ca_file" in f else None
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        raise doc.fail(f["ca_file"], f"{where}.ca_file", "must be a path to a PEM file of CA certificates")
    username = doc.value(f["username"]) if "username" in f else None
    password = _env_value(doc, f["password_env"], f"{where}.password_env", env) if "password_env" in f else None
    if password and tls == "none":
        raise doc.fail(f["password_env"], f"{where}.password_env",
                       "a login without TLS sends the password in clear: use tls: starttls or implicit")
    return Channel(
        type="email", to=tuple(to), sender=sender, smtp_host=host, smtp_port=port,
        tls=tls, ca_file=ca_file, username=username, password=password,
    )


def _tls_mode(doc: _Doc, f: dict[str, yaml.Node], where: str, port: int) -> str:
    """``tls``: starttls (the default), implicit (the default on port 465) or none; the older
    ``starttls: true|false`` still reads (false means none)."""
    if "tls" in f:
        tls = doc.value(f["tls"])
        if tls not in TLS_MODES:
            raise doc.fail(f["tls"], f"{where}.tls", f"{tls!r} is not one of {list(TLS_MODES)}")
        return str(tls)
    if "starttls" in f:
        starttls = doc.value(f["starttls"])
        if not isinstance(starttls, bool):
            raise doc.fail(f["starttls"], f"{where}.starttls", "must be true or false")
        return "starttls" if starttls else "none"
    return "implicit" if port == 465 else "starttls"


def _name(doc: _Doc, node: yaml.Node, field: str) -> str:
    value = doc.value(node)
    if not isinstance(value, str) or not _NAME.match(value):
        raise doc.fail(node, field, f"{value!r} is not a name (letters, digits, _ . : -)")
    return value


def _env_value(doc: _Doc, node: yaml.Node, field: str, env: Mapping[str, str]) -> str:
    name = doc.value(node)
    if not isinstance(name, str) or not _ENV.match(name):
        raise doc.fail(node, field, f"{name!r} is not an environment variable name")
    value = env.get(name)
    if not value:
        raise doc.fail(node, field, f"environment variable {name} is not set")
    return value
