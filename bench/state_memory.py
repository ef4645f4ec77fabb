"""Memory of the aggregator's state over months of stream, with and without retention.

Feeds a simulated stream (``--per-day`` framed records a simulated day, publication times
advancing, a few up to an hour late, two watches, six partitions, some emergent framings)
through ``AggregateState`` in batches, with the retention step after each batch as the stage
runs it (default horizons: 5 min buckets 72 h, hourly 14 days, daily 400 days, contributions 7
days). The baseline, the same stream in the same run, keeps everything (no retention). Each
variant runs in its own process, so that one's freed memory does not hide the other's. Prints
VmRSS and the retained contributions and buckets after 7, 30 and 90 simulated days as a table,
then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.broker import cpu_name
from framewatch.contracts import AggregateContribution
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.retention import DAY_S, Horizons, Retention

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHECKPOINTS = (7, 30, 90)
FRAMES = ("surveillance", "trust", "fairness", "behaviour", "consumer-protection")
# passages are 300-character slices of this (a new string each, as decoded records are)
TEXT = " ".join(f"word{random.Random(3).randint(0, 99999) + i}" for i in range(20_000))
HORIZONS = Horizons({"5m": 72 * 3600, "1h": 14 * DAY_S, "1d": 400 * DAY_S}, contribution_days=7)


def vm_rss_mb() -> float:
    """Resident set size of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def day_of_records(day: int, per_day: int, rng: random.Random) -> list[AggregateContribution]:
    """One simulated day of contributions, in arrival order (a few published up to 1 h before)."""
    out = []
    for i in range(per_day):
        at = T0 + timedelta(days=day, seconds=i * DAY_S / per_day - rng.choice((0, 0, 0, rng.randint(0, 3600))))
        frame = rng.choice(FRAMES) if rng.random() > 0.1 else f"emergent:{day // 3}.{rng.randint(0, 3)}"
        segs = {f: rng.randint(1, 3) for f in rng.sample(FRAMES, 2)}
        n = day * per_day + i
        out.append(AggregateContribution(
            key=f"w{n % 2}:item-{n}-{rng.getrandbits(64):016x}", partition=n % 6, watch_id=f"w{n % 2}",
            published_at=at, frame=frame, segment_frames=segs, outlet=f"Outlet {rng.randint(0, 40)}",
            title=f"Story {n}: social credit scores and what they mean for trust {rng.getrandbits(32)}",
            url=f"https://news.example.org/{day}/{n}/social-credit-{rng.getrandbits(48):x}",
            passage=TEXT[(o := rng.randrange(len(TEXT) - 300)):o + 300], score=rng.random(),
        ))
    return out


def run_variant(retained: bool, per_day: int, days: int, batch: int) -> list[dict[str, float]]:
    """Feed the stream; figures at each checkpoint."""
    rng = random.Random(7)
    state = AggregateState()
    retention = Retention(HORIZONS) if retained else None
    rows, too_late, started = [], 0, time.perf_counter()
    for day in range(days):
        records = day_of_records(day, per_day, rng)
        for i in range(0, len(records), batch):
            chunk = records[i:i + batch]
            if retention is not None:
                admitted = retention.apply(state, chunk)
                too_late += len(admitted.expired)
                retention.step(state)
            else:
                state.apply(chunk)
        if day + 1 in CHECKPOINTS:
            rows.append({
                "day": day + 1, "rss_mb": round(vm_rss_mb(), 1), "contributions": len(state.contributions),
                "own_buckets": sum(len(c) for c in state.counts.values()), "index_keys": len(state.index),
                "too_late": too_late, "elapsed_s": round(time.perf_counter() - started, 1),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=2000, help="framed records a simulated day")
    parser.add_argument("--days", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--batch", type=int, default=250, help="records per micro-batch")
    parser.add_argument("--variant", choices=("retained", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # a child: one variant, JSON out
        print(json.dumps(run_variant(args.variant == "retained", args.per_day, args.days, args.batch)))
        return
    result: dict[str, object] = {"cpu": cpu_name(), "per_day": args.per_day, "batch": args.batch,
                                 "horizons": {**HORIZONS.bucket_s, "contribution_days": HORIZONS.contribution_days}}
    for variant in ("retained", "baseline"):
        child = subprocess.run(
            [sys.executable, __file__, "--variant", variant, "--per-day", str(args.per_day), "--days", str(args.days),
             "--batch", str(args.batch)], capture_output=True, text=True, check=True)
        result[variant] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"CPU: {result['cpu']}; {args.per_day} framed records a simulated day, batches of {args.batch}")
    print(f"{'day':>4} | {'RSS MB kept':>11} {'baseline':>9} | {'contributions':>13} {'baseline':>9} | "
          f"{'own buckets':>11} {'baseline':>9} | {'too_late':>8} | {'s':>5} {'baseline':>8}")
    for kept, base in zip(result["retained"], result["baseline"], strict=True):  # type: ignore[call-overload]
        print(f"{kept['day']:>4} | {kept['rss_mb']:>11} {base['rss_mb']:>9} | {kept['contributions']:>13} "
              f"{base['contributions']:>9} | {kept['own_buckets']:>11} {base['own_buckets']:>9} | "
              f"{kept['too_late']:>8} | {kept['elapsed_s']:>5} {base['elapsed_s']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
