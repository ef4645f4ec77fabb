"""Dead letters as text a terminal can show safely: their bytes were written by strangers.

Every control, format (bidi overrides, zero-width), surrogate, private-use or unassigned
character is escaped (``\\x1b``, ``\\u202e``), so no escape sequence ever reaches the terminal;
binary payloads are shown as a hex dump; JSON output is ASCII-only.
"""

from __future__ import annotations

import base64
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from framewatch.contracts import DeadLetter
from framewatch.dead_letters.reader import Entry
from framewatch.dead_letters.selection import NEVER_REPLAYABLE
from framewatch.timeutil import format_utc

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
DETAIL_WIDTH = 160


def _safe(ch: str) -> bool:
    return ch.isprintable() or unicodedata.category(ch) == "Zs"


def _escaped(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """*text* with every character a terminal could act on written as an escape."""
    if text.isprintable():
        return text
    return "".join(ch if _safe(ch) or (keep_newlines and ch == "\n") else _escaped(ch) for ch in text)


def one_line(text: str, width: int = DETAIL_WIDTH) -> str:
    """*text* escaped onto one line and cut to *width* characters."""
    line = escape(text)
    return line if len(line) <= width else line[: width - 3] + "..."


def key_text(letter: DeadLetter) -> str:
    """The original key, escaped and quoted, or ``(none)``."""
    if letter.key_b64 is None:
        return "(none)"
    return "'" + escape(base64.b64decode(letter.key_b64).decode("utf-8", errors="backslashreplace")) + "'"


def source_of(letter: DeadLetter) -> str:
    """Where the failed record was: ``topic[partition]@offset``."""
    return f"{escape(letter.source_topic)}[{letter.partition}]@{letter.offset}"


def row(entry: Entry) -> str:
    """One line per dead letter: id, failed_at, component, reason, source, detail."""
    letter = entry.letter
    if letter is None:
        return f"{entry.id:<10} {'-':<24} {'-':<12} {'undecodable':<16} {'-':<28} {one_line(entry.problem or '')}"
    return (f"{entry.id:<10} {letter.failed_at:%Y-%m-%dT%H:%M:%SZ}     {one_line(letter.component, 12):<12} "
            f"{one_line(letter.reason, 16):<16} {source_of(letter):<28} {one_line(letter.detail)}")


def header() -> str:
    """Column titles of :func:`row`."""
    return f"{'ID':<10} {'FAILED_AT':<24} {'COMPONENT':<12} {'REASON':<16} {'SOURCE':<28} DETAIL"


def as_json(entry: Entry, **extra: Any) -> str:
    """One ASCII-only JSON line (control characters and non-ASCII as ``\\u`` escapes)."""
    letter = entry.letter
    data: dict[str, Any] = {"id": entry.id, "partition": entry.partition, "offset": entry.offset}
    if letter is None:
        data["problem"] = entry.problem
    else:
        data.update(
            failed_at=format_utc(letter.failed_at), component=letter.component, reason=letter.reason,
            source_topic=letter.source_topic, source_partition=letter.partition,
            source_offset=letter.offset, detail=letter.detail, key_b64=letter.key_b64,
            raw_size=letter.raw_size if letter.raw_size is not None else len(letter.raw),
            raw_truncated=letter.truncated,
            replayable=letter.reason not in NEVER_REPLAYABLE and not letter.truncated,
        )
    data.update(extra)
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"))


def summary(counts: Counter[tuple[str, str]], shown: int, undecodable: int) -> list[str]:
    """Count of matching dead letters per (component, reason), most first."""
    total = sum(counts.values())
    lines = [f"{total} dead letter{'s' if total != 1 else ''} matched, {shown} shown"
             + (f"; {undecodable} record(s) of the topic are not dead letters" if undecodable else "")]
    if counts:
        lines.append(f"{'COUNT':>7}  {'COMPONENT':<12} REASON")
        for (component, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"{n:>7}  {one_line(component, 40):<12} {one_line(reason, 60)}")
    return lines


def payload(raw: bytes, max_bytes: int) -> list[str]:
    """*raw* as escaped UTF-8 text, or a hex dump when it is not UTF-8, cut at *max_bytes*
    (0: all) with the cut stated."""
    shown = raw if max_bytes <= 0 else raw[:max_bytes]
    cut = "" if len(shown) == len(raw) else f", first {len(shown)} shown (--max-bytes 0 shows all)"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return [f"payload: {len(raw)} bytes, binary (hex){cut}", *hex_dump(shown)]
    text = shown.decode("utf-8", errors="ignore")  # only a character cut at the end is dropped
    lines = escape(text, keep_newlines=True).split("\n")
    return [f"payload: {len(raw)} bytes, UTF-8 text (control characters escaped){cut}", *("  " + ln for ln in lines)]


def hex_dump(data: bytes, width: int = 16) -> list[str]:
    """``offset  hex bytes  |ascii|`` lines, non-printable bytes as dots."""
    out = []
    for start in range(0, len(data), width):
        chunk = data[start:start + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        out.append(f"  {start:08x}  {hexes:<{width * 3 - 1}}  |{text}|")
    return out


def details(entry: Entry, topic: str, replayed: str | None, max_bytes: int) -> list[str]:
    """Every field of one dead letter, then its payload."""
    letter = entry.letter
    if letter is None:
        return [f"record {entry.id} of {escape(topic)} is {escape(entry.problem or 'not a dead letter')}"]
    cure = " (a replay would fail the same way: the same bytes)" if letter.reason in NEVER_REPLAYABLE else ""
    detail = escape(letter.detail, keep_newlines=True).split("\n")
    lines = [
        f"dead letter {entry.id} of {escape(topic)}",
        f"  failed_at:      {format_utc(letter.failed_at)}",
        f"  component:      {escape(letter.component)}",
        f"  reason:         {escape(letter.reason)}{cure}",
        f"  source:         {source_of(letter)}",
        f"  key:            {key_text(letter)}",
        f"  schema_version: {letter.schema_version}",
        f"  replayed:       {replayed or 'no'}",
        f"  detail:         {detail[0]}",
        *(f"                  {line}" for line in detail[1:]),
    ]
    if letter.truncated:
        lines.append(f"  kept:           the first {len(letter.raw)} of {letter.raw_size} bytes "
                     f"(sha256 {letter.raw_sha256}); not replayable")
    return lines + payload(letter.raw, max_bytes)


def count_key(entries: Iterable[Entry]) -> Counter[tuple[str, str]]:
    """(component, reason) counts of the dead letters among *entries*."""
    return Counter((e.letter.component, e.letter.reason) for e in entries if e.letter is not None)
