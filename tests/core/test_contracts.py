"""Message contracts: round trips, and what each kind of bad bytes gets."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framewatch import contracts
from framewatch.contracts import DeadLetter, MessageContext, Quote, RawItem
from framewatch.errors import DecodeError
from tests.helpers.raw_records import NOW, raw_item


def test_raw_item_round_trips() -> None:
    item = raw_item()
    assert contracts.decode(RawItem, contracts.encode(item)) == item


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw_item().text = "changed"  # type: ignore[misc]


def test_times_are_decoded_as_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    item = raw_item(published_at=datetime(2026, 1, 1, 12, tzinfo=plus2))
    back = contracts.decode(RawItem, contracts.encode(item))
    assert back.published_at.utcoffset() == timedelta(0)
    assert back.published_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = contracts.to_dict(raw_item())
    data["added_later"] = 1
    assert contracts.decode(RawItem, json.dumps(data).encode()) == raw_item()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe\x00", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"schema_version": 99}', "schema_too_new"),
        (b'{"item_id": 1}', "invalid_field"),
        (b'{"item_id": "a"}', "invalid_field"),
        # a lone UTF-16 surrogate: valid JSON, but no UTF-8 encoder can write the record back
        (b'{"item_id": "a\\ud800", "schema_version": 1}', "not_utf8"),
        (b'{"item_id": "\xed\xa0\x80"}', "not_utf8"),
        # nesting past the interpreter's stack, and past the decoders' own limit
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
        (b'{"item_id": "a", "tags": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        (b'{"item_id": "' + b"x" * (4 * 1024 * 1024) + b'"}', "too_large"),
    ],
    ids=["not_utf8", "not_json", "not_object", "schema_too_new", "int_id", "missing_fields", "escaped_surrogate",
         "raw_surrogate", "deeper_than_the_stack", "deeper_than_the_limit", "larger_than_the_limit"],
)
def test_bad_bytes_raise_one_error_type_with_reason_and_bytes(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        contracts.decode(RawItem, raw)
    assert info.value.reason == reason
    assert info.value.raw == raw
    assert reason in contracts.DECODE_REASONS


def test_escaped_surrogate_pairs_are_fine() -> None:
    data = contracts.to_dict(raw_item(text="emoji \U0001F600"))
    raw = json.dumps(data, ensure_ascii=True).encode()
    assert b"\\ud83d\\ude00" in raw
    assert contracts.decode(RawItem, raw).text == "emoji \U0001F600"


def test_wrong_kind_literal_is_invalid() -> None:
    data = contracts.to_dict(raw_item())
    data["kind"] = "tweet"
    with pytest.raises(DecodeError, match="invalid_field"):
        contracts.decode(RawItem, json.dumps(data).encode())


def test_dead_letter_keeps_original_bytes() -> None:
    ctx = MessageContext("topic", 2, 41, b"key")
    record = contracts.dead_letter("processing", ctx, "not_json", "boom", b"\x00raw", NOW)
    back = contracts.decode(DeadLetter, contracts.encode(record))
    assert back.raw == b"\x00raw"
    assert (back.source_topic, back.partition, back.offset, back.reason) == ("topic", 2, 41, "not_json")


def test_stable_id_is_stable_and_distinct() -> None:
    assert contracts.stable_id("a", "b") == contracts.stable_id("a", "b")
    assert contracts.stable_id("a", "b") != contracts.stable_id("ab", "")


@given(st.text(), st.lists(st.text(), max_size=3))
def test_any_text_round_trips(text: str, quotes: list[str]) -> None:
    item = raw_item(text=text, quotes=tuple(Quote(q) for q in quotes))
    assert contracts.decode(RawItem, contracts.encode(item)) == item


def _alert_v1() -> dict[str, object]:
    return {"key": "w:f:2026-01-01T00:00:00Z", "watch_id": "w", "frame": "f", "rule": "share_spike",
            "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z", "baseline_share": 0.2,
            "observed_share": 0.4, "observed_count": 20, "window_items": 50, "score": 4.1,
            "detected_at": "2026-01-01T01:01:00Z", "top_items": [], "schema_version": 1}


def test_v1_and_v2_alerts_decode_as_v3_without_a_level_and_v3_round_trips() -> None:
    v2 = {**_alert_v1(), "key": "w:f:2026-01-01T00:00:00Z:shift", "kind": "shift", "rule": "binomial_cusum",
          "change_point": "2026-01-01T00:00:00Z", "share_after": 0.4, "detector": "binomial_cusum", "schema_version": 2}
    old, shift = (contracts.decode(contracts.Alert, json.dumps(r).encode()) for r in (_alert_v1(), v2))
    assert (old.kind, old.sensitivity, shift.kind, shift.sensitivity) == ("spike", None, "shift", None)
    high = dataclasses.replace(shift, key=contracts.alert_key("w", "f", shift.window_start, "shift", "high"),
                               sensitivity="high", schema_version=3)
    assert contracts.Alert.SCHEMA_VERSION == 3
    assert contracts.decode(contracts.Alert, contracts.encode(high)) == high
    with pytest.raises(DecodeError) as err:
        contracts.decode(contracts.Alert, json.dumps({**v2, "sensitivity": "extreme"}).encode())
    assert err.value.reason == "invalid_field"
    with pytest.raises(DecodeError) as err:
        contracts.decode(contracts.Alert, json.dumps({**v2, "schema_version": 4}).encode())
    assert err.value.reason == "schema_too_new"


def test_alert_keys_differ_per_level_and_kind_and_a_spikes_key_keeps_its_form() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    keys = {contracts.alert_key("w", "f", start, kind, level) for kind in ("shift", "drift") for level in contracts.SENSITIVITIES}
    assert len(keys) == 6 and contracts.alert_key("w", "f", start) not in keys
    assert contracts.alert_key("w", "f", start) == "w:f:2026-01-01T00:00:00Z"
    assert contracts.alert_key("w", "f", start, "shift", "low") == "w:f:2026-01-01T00:00:00Z:low:shift"


def test_the_codec_is_the_same_through_contracts() -> None:
    from framewatch import codec

    assert (contracts.decode, contracts.encode, contracts.too_deep, contracts.MAX_DEPTH) == (
        codec.decode, codec.encode, codec.too_deep, codec.MAX_DEPTH)
