"""Throughput of the aggregator stage: encoded framed records in, state + aggregates + alerts out.

Runs the real ``AggregateStage`` (decode, per-key dedup state, per-batch bucketing, partial rows,
encoded outputs, spike evaluation) on micro-batches of encoded FramedItem records, no Kafka:
``records_per_s`` (Parquet is written by ``framewatch sink``, measured in bench/sink.py). The baseline, measured in the same run on the same bytes, is a naive
per-record Python aggregation: ``json.loads``, parse the time, ``+= 1`` in a dict per bucket (no
dedup, no outputs). Prints the figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

from framewatch import contracts
from framewatch.contracts import FramedItem, FramedSegment, FrameScore, MessageContext
from framewatch.kafka_io import Message
from framewatch.processing.trends import codec as aggregate_codec
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector
from framewatch.processing.trends.stage import AggregateStage
from framewatch.timeutil import parse_utc

FRAMES = ("surveillance", "trust", "fairness", None)
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def records(n: int, watches: int, seed: int = 1, spread: str = "live", per_min: float = 100.0) -> list[bytes]:
    """Encoded framed records: 3 segments each, some emergent.

    ``live``: publication times follow a stream of *per_min* records a minute over all watches
    (up to 30 min late), 5% of them back-filled up to 7 days old. ``uniform``: times uniform
    over 7 days (worst case: almost every record touches buckets no other record in its batch
    touches, so the partial rows to publish multiply).
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        frame = rng.choice(FRAMES)
        segs = []
        for j in range(3):
            f = rng.choice(FRAMES)
            segs.append(FramedSegment(
                index=j, text=f"segment {j} of item {i} about social credit scores and trust",
                text_hash=f"{i}.{j}", frame=f, score=round(rng.random(), 4), margin=0.1,
                top=(FrameScore("surveillance", 0.5), FrameScore("trust", 0.4)),
                cluster=None if f else f"emergent:{rng.randint(0, 4)}",
            ))
        if spread == "uniform":
            at = T0 + timedelta(seconds=rng.randint(0, 7 * 86400))
        else:
            at = T0 + timedelta(seconds=i * 60 / per_min - rng.randint(0, 1800))
            if rng.random() < 0.05:
                at -= timedelta(seconds=rng.randint(0, 7 * 86400))
        w = f"watch{i % watches}"
        item = FramedItem(
            key=f"{w}:item{i}", item_id=f"item{i}", watch_id=w, source_id="src", kind="article",
            published_at=at, processed_at=at + timedelta(minutes=3), frame=frame,
            frame_shares={frame: 1.0} if frame else {}, segments=tuple(segs), codebook_version="v1",
            model_id="m", method="bench", url=f"https://news.example/{i}", title=f"Story {i}",
            outlet=f"outlet{i % 7}",
        )
        out.append(contracts.encode(item))
    return out


def run_stage(raw: list[bytes], batch: int) -> tuple[float, AggregateState]:
    state = AggregateState()
    stage = AggregateStage(
        state, SpikeDetector(SpikeConfig()), state_topic="s", aggregates_topic="a", alerts_topic="x",
        clock=lambda: T0 + timedelta(days=7),
    )
    msgs = [Message(MessageContext("framed", i % 6, i, None), v) for i, v in enumerate(raw)]
    started = time.perf_counter()
    for k in range(0, len(msgs), batch):
        stage(msgs[k:k + batch])
    return time.perf_counter() - started, state


def run_naive(raw: list[bytes]) -> tuple[float, dict[tuple[str, str, str, int], int]]:
    counts: dict[tuple[str, str, str, int], int] = {}
    started = time.perf_counter()
    for value in raw:
        d = json.loads(value)
        t = int(parse_utc(d["published_at"]).timestamp())
        frame = d["frame"] or "unframed"
        for gran, step in (("5m", 300), ("1h", 3600), ("1d", 86400)):
            for f in (frame, "*"):
                k = (d["watch_id"], f, gran, t - t % step)
                counts[k] = counts.get(k, 0) + 1
    return time.perf_counter() - started, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--watches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000, help="micro-batch size (batch_max_records)")
    parser.add_argument("--spread", choices=["live", "uniform"], default="live")
    parser.add_argument("--per-min", type=float, default=100.0, help="live stream: records a minute (all watches)")
    args = parser.parse_args()
    raw = records(args.records, args.watches, spread=args.spread, per_min=args.per_min)
    stage_s, state = run_stage(raw, args.batch)
    naive_s, counts = run_naive(raw)
    # same totals as the naive count (the stage also dedups; these keys are all distinct)
    day = {k: v[0] for k, v in state.totals.items() if k[2] == "1d" and k[4] == "*"}
    naive_day = sum(v for k, v in counts.items() if k[2] == "1d" and k[1] == "*")
    assert sum(day.values()) == naive_day == args.records
    result = {
        "bench": "aggregate",
        "records": args.records, "batch": args.batch, "watches": args.watches, "spread": args.spread, "per_min": args.per_min if args.spread == "live" else None,
        "cpus": os.cpu_count(),
        "json_parser": "orjson" if aggregate_codec.orjson is not None else "json",
        "records_per_s": round(args.records / stage_s),
        "baseline": "naive per-record json.loads + dict counts (no dedup, no outputs)",
        "baseline_records_per_s": round(args.records / naive_s),
        "ratio_vs_baseline": round(naive_s / stage_s, 3),
        "target_records_per_s": 20_000,
        "meets_target": args.records / stage_s >= 20_000,
    }
    for k, v in result.items():
        print(f"{k:>24}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
