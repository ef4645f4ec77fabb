"""The sources file: which feeds to poll, validated with errors that name the file, line and field.

    sources:
      - id: scmp-china            # unique, [a-z0-9_.-]; used as a metric label
        url: https://example.org/rss
        kind: news                # news | forum
        outlet: Example Post      # optional display name
        poll_interval: 15m        # optional; seconds or 30s / 15m / 2h (default 15m)
        platform: auto            # optional: auto | rss | discourse | phpbb | smf | xenforo
        tags: [china, policy]     # optional
        allow_private: false      # optional; true for an intranet feed (see below)

Feeds are fetched from public addresses only (ingest/addresses.py): a host that resolves to a
loopback, private (RFC 1918, ULA), CGNAT or other non-public address is refused. ``allow_private:
true`` opts one entry's own host into such addresses, for intranet feeds; links found inside the
feed are still followed on its own site only, and redirects to other hosts are held to the public
rule. A ``file://`` URL reads a local file, so it needs ``allow_private: true`` as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from framewatch.errors import ConfigError

SourceKind = Literal["news", "forum"]
Platform = Literal["auto", "rss", "discourse", "phpbb", "smf", "xenforo"]
PLATFORMS: tuple[str, ...] = ("auto", "rss", "discourse", "phpbb", "smf", "xenforo")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_POLL_S = 900.0
MIN_POLL_S = 10.0


@dataclass(frozen=True, slots=True)
class Source:
    """One feed to poll."""

    id: str
    url: str
    kind: SourceKind
    outlet: str | None = None
    poll_interval_s: float = DEFAULT_POLL_S
    platform: Platform = "auto"
    tags: tuple[str, ...] = ()
    allow_private: bool = False  # this feed's own host may have non-public addresses (intranet)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = loader.construct_mapping(node, deep=True)  # type: ignore[assignment]
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``90``, ``30s``, ``15m``, ``2h``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15m")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 90, 30s, 15m or 2h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def load_sources(path: str | Path) -> list[Source]:
    """Read and validate a sources file; raises ConfigError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read sources file: {exc.strerror or exc}") from exc
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list):
        raise ConfigError(f"{path}:1: field 'sources': expected a list of sources")
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(doc["sources"]):
        where = f"{path}:{entry.get('__line__', '?') if isinstance(entry, dict) else '?'}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: field 'sources[{index}]': expected a mapping")
        source = _source_from(entry, f"{where}: field 'sources[{index}]")
        if source.id in seen:
            raise ConfigError(f"{where}: field 'sources[{index}].id': duplicate id {source.id!r} (first on line {seen[source.id]})")
        seen[source.id] = entry["__line__"]
        sources.append(source)
    return sources


def _source_from(entry: dict[str, Any], where: str) -> Source:
    def fail(name: str, why: str) -> ConfigError:
        return ConfigError(f"{where}.{name}': {why}")

    unknown = set(entry) - {"__line__", "id", "url", "kind", "outlet", "poll_interval", "platform", "tags", "allow_private"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown field")
    sid = entry.get("id")
    if not isinstance(sid, str) or not _ID.match(sid):
        raise fail("id", "required; lowercase letters, digits, '_', '.', '-' (at most 80)")
    url = entry.get("url")
    if not isinstance(url, str) or not re.match(r"^(https?://\S+|file:///?\S+)$", url):
        raise fail("url", "required; an http(s):// or file:// URL")
    kind = entry.get("kind")
    if kind not in ("news", "forum"):
        raise fail("kind", "required; news or forum")
    outlet = entry.get("outlet")
    if outlet is not None and not isinstance(outlet, str):
        raise fail("outlet", "expected a string")
    try:
        interval = parse_duration(entry.get("poll_interval", DEFAULT_POLL_S))
    except ValueError as exc:
        raise fail("poll_interval", str(exc)) from exc
    if interval < MIN_POLL_S:
        raise fail("poll_interval", f"at least {MIN_POLL_S:.0f}s, to be polite to the server")
    platform = entry.get("platform", "auto")
    if platform not in PLATFORMS:
        raise fail("platform", f"one of {', '.join(PLATFORMS)}")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise fail("tags", "expected a list of strings")
    allow_private = entry.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise fail("allow_private", f"expected true or false, not {allow_private!r}"[:120])
    if url.startswith("file:") and not allow_private:
        raise fail("url", "a file:// URL reads a local file: set allow_private: true to allow it")
    return Source(sid, url, kind, outlet, interval, platform, tuple(tags), allow_private)
