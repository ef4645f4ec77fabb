"""Fast decoding of a record's bytes straight into a row, as strict as ``contracts.decode``.

``contracts.decode`` resolves every dataclass's type hints again for each nested record, which
costs about 1.5 ms per framed item (3 segments) on a shared core: the sink would manage some
600 items/s. Here the hints are resolved once per type into a tree of small converters
(orjson parses), giving the same values as ``contracts.decode`` followed by taking the fields,
but as plain dicts and lists that polars takes as they are.

It accepts nothing ``contracts.decode`` refuses: the same size, surrogate, version and per-field
checks; nesting is bounded by the record's types, and unknown fields that nest deeply are refused
(a stricter rule than the full decoder's, which then decides). Whatever it does not accept raises; the caller then asks ``contracts.decode``,
which names the canonical reason (or, were this module stricter somewhere, decodes the record).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import orjson

from framewatch import contracts
from framewatch.timeutil import parse_utc

Convert = Callable[[Any], Any]


class Refused(ValueError):
    """The fast path does not take this record (``contracts.decode`` decides)."""


def _refuse(what: str) -> typing.NoReturn:
    raise Refused(what)


def _optional(inner: Convert) -> Convert:
    return lambda v: None if v is None else inner(v)


def _union(options: list[Convert]) -> Convert:
    def convert(v: Any) -> Any:
        for option in options:
            try:
                return option(v)
            except (Refused, TypeError, ValueError):
                continue
        _refuse("no union member fits")
    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    return lambda v: v if v in allowed else _refuse(f"{v!r} not in {allowed}")


def _sequence(inner: Convert) -> Convert:
    return lambda v: [inner(x) for x in v] if isinstance(v, list) else _refuse("expected a list")


def _mapping(inner: Convert) -> Convert:
    return lambda v: {str(k): inner(x) for k, x in v.items()} if isinstance(v, dict) else _refuse("expected an object")


def _datetime(v: Any) -> datetime:
    return parse_utc(v) if isinstance(v, str) else _refuse("expected an ISO-8601 string")


def _float(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else _refuse("expected a number")


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else _refuse("expected an integer")


def _exact(kind: type) -> Convert:
    return lambda v: v if isinstance(v, kind) else _refuse(f"expected {kind.__name__}")


def converter(hint: Any) -> Convert:
    """The converter of one type hint, mirroring ``contracts._convert``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = [converter(a) for a in args if a is not type(None)]
        inner = members[0] if len(members) == 1 else _union(members)
        return _optional(inner) if type(None) in args else inner
    if origin is Literal:
        return _literal(args)
    if origin is tuple:
        return _sequence(converter(args[0]))
    if origin is dict:
        return _mapping(converter(args[1]))
    if hint is datetime:
        return _datetime
    if dataclasses.is_dataclass(hint):
        return record_converter(typing.cast(type, hint))
    simple: dict[Any, Convert] = {float: _float, int: _int, str: _exact(str), bool: _exact(bool), typing.Any: lambda v: v}
    if hint in simple:
        return simple[hint]
    raise TypeError(f"unsupported type {hint!r}")


@functools.cache
def record_converter(record_type: type) -> Convert:
    """Object -> row dict for *record_type*: every field, required ones present, defaults filled."""
    hints = typing.get_type_hints(record_type)
    fields = []
    for f in dataclasses.fields(record_type):
        if f.default is not dataclasses.MISSING:
            default: Callable[[], Any] | None = functools.partial(lambda d: d, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory
        else:
            default = None
        fields.append((f.name, converter(hints[f.name]), default))

    names = {name for name, _, _ in fields}

    def convert(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            _refuse("expected an object")
        if len(data) > len(names) or not data.keys() <= names:
            _unknown_not_deep(data, names)
        row = {}
        for name, conv, default in fields:
            if name in data:
                row[name] = conv(data[name])
            elif default is None:
                _refuse(f"missing field {name!r}")
            else:
                row[name] = _plain_default(default())
        return row

    return convert


def _unknown_not_deep(data: dict[str, Any], names: set[str]) -> None:
    """Unknown fields are ignored, but ``contracts.decode`` refuses a record nested too deep
    anywhere: refuse one whose unknown values nest at all deeply (known fields are bounded by
    their types, at most 4 levels)."""
    for key, value in data.items():
        if key not in names and isinstance(value, dict | list) and contracts.too_deep(value, contracts.MAX_DEPTH // 2):
            _refuse("an unknown field nests deep")


def _plain_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def decode_row(record_type: type, raw: bytes) -> dict[str, Any]:
    """The record's fields as a row, or ``Refused`` (or a parse error) for anything doubtful."""
    if len(raw) > contracts.MAX_RECORD_BYTES:
        _refuse("too large")
    data = orjson.loads(raw)  # refuses invalid UTF-8 and lone surrogates
    if not isinstance(data, dict):
        _refuse("not an object")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > record_type.SCHEMA_VERSION:  # type: ignore[attr-defined]
        _refuse("schema version")
    return record_converter(record_type)(data)  # depth: bounded by the types, and checked on unknown fields
