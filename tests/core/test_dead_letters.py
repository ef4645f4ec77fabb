"""`framewatch dead-letters list|show|replay` on the real broker: dead letters made by the real
consumer loop and written directly, every filter, hostile bytes shown escaped, and replays that
produce each selected record exactly once."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from framewatch import contracts
from framewatch.cli import main
from framewatch.contracts import DeadLetter, RawItem
from framewatch.dead_letters import REPLAY_HEADER
from framewatch.dead_letters import cli as dead_letters_cli
from framewatch.dead_letters.reader import Entry, Record, TopicReader, to_entry
from framewatch.dead_letters.replay import ReplayMarker, execute, markers_topic, plan, read_markers
from framewatch.dead_letters.selection import FilterError, parse_when
from framewatch.kafka_io import (
    Message,
    Outgoing,
    StageOutput,
    decode_batch,
    ensure_topics,
    make_consumer,
    make_producer,
    run_stage,
)
from framewatch.metrics import PipelineMetrics
from framewatch.settings import DEAD_LETTERS, RAW_ITEMS, Settings
from framewatch.timeutil import utcnow
from tests.helpers.raw_records import raw_item

pytestmark = pytest.mark.integration

HOSTILE = b'\x1b]0;pwned\x07\x1b[2J\x1b[31m{"oops'  # sets the title, clears the screen, turns red
BINARY = b"\xff\xfe\x00\x01binary\x9b"


@dataclass
class Deployment:
    settings: Settings
    raw_topic: str
    ids: dict[str, str]  # name of a dead letter in this test -> its id

    def env(self) -> dict[str, str]:
        return {"FRAMEWATCH_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "FRAMEWATCH_TOPIC_PREFIX": self.settings.topic_prefix}

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, ["dead-letters", *args], env=self.env())

    def listed(self, *args: str) -> set[str]:
        result = self.cli("list", "--json", *args)
        assert result.exit_code == 0, result.output
        return {json.loads(line)["id"] for line in result.stdout.splitlines()}

    def names(self, *names: str) -> set[str]:
        return {self.ids[n] for n in names}


def stage_failing_on_boom(out_topic: str) -> Callable[[Sequence[Message]], StageOutput]:
    """Decodes raw items and raises for item ``boom``: the loop dead-letters it as stage_error."""

    def stage(batch: Sequence[Message]) -> StageOutput:
        items, failures = decode_batch(RawItem, batch)
        for _, item in items:
            if item.item_id == "boom":
                raise ValueError("boom \x1b[31mred\x1b[0m")
        return StageOutput(produce=[Outgoing(out_topic, i.item_id, b"ok") for _, i in items], failures=failures)

    return stage


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def letter(name: str, *, ago: timedelta, reason: str = "stage_error", component: str = "notify",
           source: str, key: bytes | None = None, raw: bytes = b"{}", detail: str = "") -> DeadLetter:
    return DeadLetter(component=component, source_topic=source, partition=0, offset=7, reason=reason,
                      detail=detail or f"{name} failed", raw_b64=base64.b64encode(raw).decode(),
                      failed_at=utcnow() - ago, key_b64=base64.b64encode(key).decode() if key else None)


def entries(settings: Settings) -> list[Entry]:
    with TopicReader(settings) as reader:
        return [to_entry(r) for r in reader.records(settings.topic(DEAD_LETTERS))]


def source_records(settings: Settings, topic: str) -> list[Record]:
    with TopicReader(settings) as reader:
        return list(reader.records(topic))


def replays_in(records: list[Record]) -> list[Record]:
    return [r for r in records if any(k == REPLAY_HEADER for k, _ in r.headers)]


@pytest.fixture
def deployment(settings_factory: Callable[..., Settings], topic_factory: Callable[..., str]) -> Deployment:
    """Dead letters from the real loop (not_json, hostile bytes, invalid_field, stage_error) and
    written directly (older ones, schema_too_new, keyless, binary, another deployment's topic)."""
    settings = settings_factory()
    raw_topic = topic_factory(settings, RAW_ITEMS)
    dead_topic = topic_factory(settings, DEAD_LETTERS)
    alerts = topic_factory(settings, "alerts")
    produce(settings, raw_topic, [
        (b"good", contracts.encode(raw_item(item_id="good"))),
        (b"bad-json", b"{oops"),
        (b"hostile", HOSTILE),
        (b"bad-field", b'{"item_id": 5}'),
        (b"boom", contracts.encode(raw_item(item_id="boom"))),
    ])
    consumer = make_consumer(settings, settings.group_id("processing"), [raw_topic])
    producer = make_producer(settings)
    try:
        run_stage(consumer=consumer, producer=producer, stage=stage_failing_on_boom(settings.topic("out")),
                  settings=settings, metrics=PipelineMetrics(CollectorRegistry(), "processing"),
                  stop=threading.Event(), idle_stop_s=3)
    finally:
        consumer.close()
        producer.close()
    direct = {
        "old-alert": letter("old-alert", ago=timedelta(days=3), source=alerts, key=b"w:f:t"),
        "hours-alert": letter("hours-alert", ago=timedelta(hours=5), source=alerts, key=b"w:f:u",
                              detail="line one\nline two \x1b[2J\u202e"),
        "too-new": letter("too-new", ago=timedelta(hours=1), reason="schema_too_new", component="processing",
                          source=raw_topic, key=b"k-new", raw=b'{"schema_version":2}'),
        "keyless": letter("keyless", ago=timedelta(minutes=50), reason="processing_error", component="processing",
                          source=raw_topic, raw=b'{"keyless":true}'),
        "binary": letter("binary", ago=timedelta(minutes=40), reason="not_utf8", component="processing",
                         source=raw_topic, key=b"bin", raw=BINARY),
        "foreign": letter("foreign", ago=timedelta(minutes=30), source="other.raw-items", key=b"f"),
    }
    produce(settings, dead_topic, [(None, contracts.encode(d)) for d in direct.values()])
    ids: dict[str, str] = {}
    for entry in entries(settings):
        assert entry.letter is not None
        name = next((n for n, d in direct.items() if d.detail == entry.letter.detail), None)
        if name is None:
            name = base64.b64decode(entry.letter.key_b64 or "").decode()  # from the loop: the record's key
        ids[name] = entry.id
    assert set(ids) == {"bad-json", "hostile", "bad-field", "boom", *direct}
    return Deployment(settings, raw_topic, ids)


def test_list_filters_select_exactly(deployment: Deployment) -> None:
    d = deployment
    everything = set(d.ids.values())
    assert d.listed() == everything
    assert d.listed("--reason", "not_json") == d.names("bad-json", "hostile")
    assert d.listed("--reason", "not_json", "--reason", "invalid_field") == d.names("bad-json", "hostile", "bad-field")
    assert d.listed("--component", "notify") == d.names("old-alert", "hours-alert", "foreign")
    assert d.listed("--source-topic", "alerts") == d.names("old-alert", "hours-alert")
    assert d.listed("--source-topic", d.settings.topic("alerts")) == d.names("old-alert", "hours-alert")
    assert d.listed("--source-topic", "other.raw-items") == d.names("foreign")
    assert d.listed("--since", "2h") == everything - d.names("old-alert", "hours-alert")
    assert d.listed("--until", "2h") == d.names("old-alert", "hours-alert")
    assert d.listed("--since", "4d", "--until", "1d") == d.names("old-alert")
    since = (utcnow() - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert d.listed("--since", since, "--until", "2h") == d.names("hours-alert")
    assert d.listed("--component", "processing", "--since", "55m", "--until", "35m") == d.names("keyless", "binary")
    # --limit keeps the most recent: the four from the loop failed last
    assert d.listed("--limit", "4") == d.names("bad-json", "hostile", "bad-field", "boom")


def test_list_prints_safe_lines_and_a_summary(deployment: Deployment) -> None:
    result = deployment.cli("list")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output
    lines = result.stdout.splitlines()
    boom = next(line for line in lines if line.startswith(deployment.ids["boom"] + " "))
    assert "stage_error" in boom and "ValueError: boom \\x1b[31mred\\x1b[0m" in boom
    hours = next(line for line in lines if line.startswith(deployment.ids["hours-alert"] + " "))
    assert "line one\\nline two \\x1b[2J\\u202e" in hours
    assert "10 dead letters matched, 10 shown" in result.stdout
    summary = [line.split() for line in lines if line.split()[0].isdigit() and len(line.split()) == 3]
    counts = {(component, reason): int(n) for n, component, reason in summary}
    assert counts == {("notify", "stage_error"): 3, ("processing", "not_json"): 2, ("processing", "invalid_field"): 1,
                      ("processing", "stage_error"): 1, ("processing", "schema_too_new"): 1,
                      ("processing", "processing_error"): 1, ("processing", "not_utf8"): 1}


def test_show_escapes_hostile_bytes_and_dumps_binary(deployment: Deployment) -> None:
    d = deployment
    result = d.cli("show", d.ids["hostile"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m{\"oops" in result.output
    assert "key:            'hostile'" in result.output and f"source:         {d.raw_topic}[" in result.output
    assert f"payload: {len(HOSTILE)} bytes, UTF-8 text" in result.output
    assert "a replay would fail the same way" in result.output

    binary = d.cli("show", d.ids["binary"], "--max-bytes", "8")
    assert binary.exit_code == 0, binary.output
    assert f"payload: {len(BINARY)} bytes, binary (hex), first 8 shown" in binary.output
    assert "ff fe 00 01 62 69 6e 61" in binary.output and "\x9b" not in binary.output

    as_json = json.loads(d.cli("show", d.ids["hostile"], "--json").stdout)
    assert base64.b64decode(as_json["raw_b64"]) == HOSTILE and as_json["replayed"] is None


def test_user_mistakes_exit_2_with_one_line(deployment: Deployment, settings_factory: Callable[..., Settings]) -> None:
    d = deployment
    for args, message in [
        (["list", "--since", "yesterday"], "neither an ISO-8601 time"),
        (["list", "--since", "1h", "--until", "2h"], "is after --until"),
        (["show", "nope"], "is not a dead-letter id"),
        (["show", "0:999999"], "no record 0:999999"),
        (["show", "9:0"], "it has partitions 0-2"),
        (["replay", "--claim-ttl", "soon"], "is not a duration"),
    ]:
        result = d.cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and message in result.stderr, (args, result.stderr)
    assert d.cli("list", "--limit", "0").exit_code == 2
    empty = CliRunner().invoke(main, ["dead-letters", "list"], env={**d.env(), "FRAMEWATCH_TOPIC_PREFIX": "nothing-here."})
    assert empty.exit_code == 2 and "topic 'nothing-here.dead-letters' does not exist" in empty.stderr
    with pytest.raises(FilterError):
        parse_when("tomorrow-ish", utcnow())


def test_dry_run_is_the_default_and_produces_nothing(deployment: Deployment) -> None:
    d = deployment
    before = source_records(d.settings, d.raw_topic)
    result = d.cli("replay")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    would = {line.split()[2] for line in lines if line.startswith("would replay")}
    assert would == d.names("boom", "too-new", "keyless", "old-alert", "hours-alert")
    held = {line.split()[2] for line in lines if line.startswith("warning: held")}
    assert held == d.names("bad-json", "hostile", "bad-field", "binary")
    refused = [line for line in lines if line.startswith("refused")]
    assert len(refused) == 1 and d.ids["foreign"] in refused[0] and "outside this deployment's prefix" in refused[0]
    assert "dry run: 5 to replay, 0 already replayed, 0 claimed by another run, 4 held back, 1 refused" in result.stdout
    produce(d.settings, d.raw_topic, [(b"marker", b"after the dry run")])
    after = source_records(d.settings, d.raw_topic)
    assert [(r.key, r.value) for r in after if r not in before] == [(b"marker", b"after the dry run")]
    with TopicReader(d.settings) as reader:
        assert not reader.exists(markers_topic(d.settings))  # a dry run creates and writes nothing


def test_execute_replays_each_selected_record_once_with_its_key(deployment: Deployment) -> None:
    d = deployment
    first = d.cli("replay", "--source-topic", "raw-items", "--execute")
    assert first.exit_code == 0, first.output
    assert "replayed 3, taken by another run 0, failed 0" in first.stdout
    replayed = replays_in(source_records(d.settings, d.raw_topic))
    got = sorted((dict(r.headers)[REPLAY_HEADER].decode(), r.key, r.value) for r in replayed)
    dead = d.settings.topic(DEAD_LETTERS)
    assert got == sorted([
        (f"{dead}:{d.ids['boom']}", b"boom", contracts.encode(raw_item(item_id="boom"))),
        (f"{dead}:{d.ids['too-new']}", b"k-new", b'{"schema_version":2}'),
        (f"{dead}:{d.ids['keyless']}", None, b'{"keyless":true}'),
    ])

    again = d.cli("replay", "--source-topic", "raw-items", "--execute")
    assert again.exit_code == 0, again.output
    assert "replayed 0," in again.stdout
    assert sum(line.startswith("already ") for line in again.stdout.splitlines()) == 3
    assert len(replays_in(source_records(d.settings, d.raw_topic))) == 3

    # A reason a replay cannot cure is replayed when chosen by --reason, bytes unchanged.
    chosen = d.cli("replay", "--reason", "not_json", "--execute")
    assert chosen.exit_code == 0, chosen.output
    values = sorted(r.value for r in replays_in(source_records(d.settings, d.raw_topic)))
    assert values.count(HOSTILE) == 1 and values.count(b"{oops") == 1 and len(values) == 5
    shown = d.cli("show", d.ids["hostile"])
    assert f"replayed:       yes, to {d.raw_topic}[" in shown.stdout
    with TopicReader(d.settings) as reader:
        markers = read_markers(reader, markers_topic(d.settings))
    done = {m.dead_letter for m in markers if m.state == "replayed"}
    assert done == d.names("boom", "too-new", "keyless", "bad-json", "hostile")


def test_a_named_foreign_topic_is_refused_before_anything_is_produced(deployment: Deployment) -> None:
    d = deployment
    result = d.cli("replay", d.ids["foreign"], d.ids["boom"], "--execute")
    assert result.exit_code == 2 and "outside this deployment's prefix" in result.stderr
    assert replays_in(source_records(d.settings, d.raw_topic)) == []


def test_concurrent_runs_replay_once_and_a_stale_claim_is_taken_over(deployment: Deployment) -> None:
    d = deployment
    settings = d.settings
    ensure_topics(settings, [markers_topic(settings)], partitions=1, compacted=True)
    selected = [e for e in entries(settings) if e.id in d.names("boom", "too-new")]
    now = utcnow()
    with TopicReader(settings) as reader_a, TopicReader(settings) as reader_b:
        # Both runs read the markers before either claims: only the first claim wins.
        plan_a, end_a = plan(selected, settings=settings, reader=reader_a, chosen_reasons=frozenset(),
                             chosen_ids=frozenset(), now=now)
        plan_b, end_b = plan(selected, settings=settings, reader=reader_b, chosen_reasons=frozenset(),
                             chosen_ids=frozenset(), now=now)
        producer = make_producer(settings)
        try:
            a = execute(plan_a, settings=settings, reader=reader_a, producer=producer, markers_end=end_a, now=now, run_id="run-a")
            b = execute(plan_b, settings=settings, reader=reader_b, producer=producer, markers_end=end_b, now=now, run_id="run-b")
        finally:
            producer.close()
    assert sorted(a.replayed) == sorted(d.names("boom", "too-new")) and b.replayed == []
    assert sorted(b.taken) == sorted(d.names("boom", "too-new"))
    assert len(replays_in(source_records(settings, d.raw_topic))) == 2

    # A run that crashed after claiming: a fresh claim is left alone, a stale one taken over.
    keyless = next(e for e in entries(settings) if e.id == d.ids["keyless"])
    stale = ReplayMarker(keyless.id, keyless.digest, "claimed", "crashed", utcnow() - timedelta(hours=1))
    produce(settings, markers_topic(settings), [(keyless.id.encode(), contracts.encode(stale))])
    held = d.cli("replay", keyless.id, "--claim-ttl", "2h")
    assert "claimed by run crashed" in held.stdout and "0 to replay" in held.stdout
    taken = d.cli("replay", keyless.id, "--execute")
    assert taken.exit_code == 0 and "replayed 1," in taken.stdout, taken.output
    assert len(replays_in(source_records(settings, d.raw_topic))) == 3


def test_a_chosen_doomed_reason_is_warned_and_a_long_read_shows_progress(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    d = deployment
    result = d.cli("replay", "--reason", "not_json")
    assert result.exit_code == 0, result.output
    would = [line for line in result.stdout.splitlines() if line.startswith("would replay")]
    assert len(would) == 2 and all(line.endswith("warning: not_json will likely fail again") for line in would)

    monkeypatch.setattr(dead_letters_cli, "PROGRESS_AFTER_S", 0.0)  # every read counts as long
    listed = d.cli("list", "--json")
    assert f"reading {d.settings.topic(DEAD_LETTERS)}: 10/10 records (100%)" in listed.stderr
    assert listed.stdout.count("\n") == 10  # progress never mixes into the JSON lines


def test_a_record_that_is_not_a_dead_letter_is_counted_not_fatal(deployment: Deployment) -> None:
    d = deployment
    produce(d.settings, d.settings.topic(DEAD_LETTERS), [(b"junk", b"\x1b[2Jnot a dead letter")])
    junk = next(e for e in entries(d.settings) if e.letter is None)
    result = d.cli("list")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith(junk.id + " "))
    assert "undecodable" in row and "\x1b" not in result.output
    assert "10 dead letters matched, 11 shown; 1 record(s) of the topic are not dead letters" in result.stdout
    assert junk.id not in d.listed("--since", "1d")  # a filter only dead letters can meet
    assert d.cli("show", junk.id).stdout.startswith(f"record {junk.id} of {d.settings.topic(DEAD_LETTERS)} is not a dead letter (not_json")
    named = d.cli("replay", junk.id)
    assert named.exit_code == 2 and "is not a dead letter" in named.stderr
