"""The records' JSON codec: ``encode`` and ``decode`` (a record, or ``DecodeError`` with a reason
from :data:`DECODE_REASONS` and the original bytes), with the limits every decoder keeps.

:mod:`framewatch.contracts` re-exports all of it (``from framewatch.contracts import decode``);
the rules of compatibility are told there.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from datetime import datetime
from typing import Any, Literal, TypeVar

from framewatch.errors import DecodeError
from framewatch.timeutil import format_utc, parse_utc

# Reasons a message fails to decode; they double as metric label values.
DECODE_REASONS = ("not_utf8", "not_json", "not_object", "schema_too_new", "invalid_field", "too_large", "too_deep")
# Limits of what a decoder reads: the producers' max request size, and nesting far beyond any
# record's own (a FramedItem is four levels deep); past them a record is refused, not parsed.
MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32

R = TypeVar("R")


def to_dict(record: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a record (datetimes as ISO-8601 UTC)."""
    return typing.cast(dict[str, Any], _plain(record))


def encode(record: Any) -> bytes:
    """Encode a record as compact UTF-8 JSON."""
    return json.dumps(to_dict(record), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def lone_surrogate(text: str, data: Any) -> str | None:
    """Why *data* (parsed from the JSON *text*) cannot be written back as UTF-8, or None.

    JSON may escape a lone UTF-16 surrogate (``"\\ud800"``); ``json.loads`` accepts it, but no
    UTF-8 encoder writes it back, so such a record would fail later, at the first produce.
    Only texts with an escaped surrogate (pairs are fine) are checked further.
    """
    if "\\u" not in text or not _ESCAPED_SURROGATE.search(text):
        return None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"lone surrogate escape: {exc.reason} at {exc.start}"
    return None


def too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON nests containers deeper than *limit* (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def decode(record_type: type[R], raw: bytes) -> R:
    """Decode *raw* bytes into *record_type*, or raise DecodeError with a reason and the bytes."""
    if isinstance(raw, bytes | bytearray) and len(raw) > MAX_RECORD_BYTES:
        raise DecodeError("too_large", f"{len(raw)} bytes, more than {MAX_RECORD_BYTES}", bytes(raw))
    try:
        text = raw.decode("utf-8")
    except (UnicodeDecodeError, AttributeError) as exc:
        raise DecodeError("not_utf8", str(exc), bytes(raw or b"")) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError("not_json", str(exc), raw) from exc
    except RecursionError as exc:  # nesting deeper than the interpreter's stack
        raise DecodeError("too_deep", f"nested more than {MAX_DEPTH} levels", raw) from exc
    if too_deep(data):
        raise DecodeError("too_deep", f"nested more than {MAX_DEPTH} levels", raw)
    lone = lone_surrogate(text, data)
    if lone:
        raise DecodeError("not_utf8", lone, raw)
    if not isinstance(data, dict):
        raise DecodeError("not_object", f"expected a JSON object, got {type(data).__name__}", raw)
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > record_type.SCHEMA_VERSION:  # type: ignore[attr-defined]
        raise DecodeError("schema_too_new", f"schema_version {version!r} is not supported", raw)
    try:
        return from_dict(record_type, data)
    except (TypeError, ValueError, KeyError) as exc:
        raise DecodeError("invalid_field", str(exc), raw) from exc


def from_dict(record_type: type[R], data: dict[str, Any]) -> R:
    """Build a record from a dict, checking every field's type; unknown keys are ignored."""
    hints = typing.get_type_hints(record_type)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(record_type):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise KeyError(f"missing field {f.name!r}")
    return record_type(**kwargs)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _convert(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, name)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError(f"field {name!r}: {'; '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"field {name!r}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"field {name!r}: expected a list")
        return tuple(_convert(args[0], v, name) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"field {name!r}: expected an object")
        return {str(k): _convert(args[1], v, name) for k, v in value.items()}
    if hint is datetime:
        if not isinstance(value, str):
            raise TypeError(f"field {name!r}: expected an ISO-8601 string")
        return parse_utc(value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"field {name!r}: expected an object")
        return from_dict(hint, value)  # type: ignore[arg-type]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"field {name!r}: expected a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"field {name!r}: expected an integer")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise TypeError(f"field {name!r}: expected {hint.__name__}")
        return value
    if hint is typing.Any:
        return value
    raise TypeError(f"field {name!r}: unsupported type {hint!r}")
