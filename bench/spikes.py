"""Spike detection on synthetic streams with planted spikes of known size.

Each watch gets Poisson arrivals (``--rate`` items/h) framed by fixed base shares; every
``--spike-every-h`` hours (jittered, never aligned to the hour) one frame's share is raised by
``--lift`` (relative, 0.5 = +50%) for one hour, the other frames shrinking in proportion (volume
unchanged). Items go through the real AggregateState and SpikeDetector in 5 min micro-batches
after a warm-up that fills the baseline.
The same stream also gives ``oracle_recall``, the recall an exact test that knows each
spike's hour and true base share reaches at one false alert per watch-week: an upper bound. An alert matches a planted spike when it names the same
watch and frame and is raised between the spike's start and one hour after its end; anything
else is a false alert.

Prints the figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import numpy as np

from framewatch.contracts import AggregateContribution
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector

FRAMES = ("surveillance", "trust", "fairness", "unframed")
SHARES = (0.4, 0.3, 0.2, 0.1)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
DEFAULTS = SpikeConfig()


def plant(rng: np.random.Generator, watches: int, warmup_h: float, hours: float, every_h: float) -> list[tuple[int, str, float, float]]:
    """Planted spikes: (watch, frame, start_s, end_s), spaced *every_h* hours with jitter."""
    spikes = []
    for w in range(watches):
        t = warmup_h + rng.uniform(2, every_h)
        while t + 1 < warmup_h + hours:
            frame = FRAMES[int(rng.integers(0, 3))]  # the three codebook frames
            start = T0.timestamp() + t * 3600 + float(rng.uniform(60, 3540))
            spikes.append((w, frame, start, start + 3600))
            t += every_h + rng.uniform(0, every_h / 2)
    return spikes


def stream(rng: np.random.Generator, watches: int, total_h: float, rate: float, lift: float,
           spikes: list[tuple[int, str, float, float]]) -> list[tuple[float, int, str]]:
    """Items (published_s, watch, frame) in time order."""
    items = []
    base = np.array(SHARES)
    by_watch: dict[int, list[tuple[str, float, float]]] = {}
    for w, f, a, b in spikes:
        by_watch.setdefault(w, []).append((f, a, b))
    for w in range(watches):
        n = rng.poisson(rate * total_h)
        times = np.sort(rng.uniform(T0.timestamp(), T0.timestamp() + total_h * 3600, n))
        probs = np.tile(base, (n, 1))
        for f, a, b in by_watch.get(w, []):
            i = FRAMES.index(f)
            inside = (times >= a) & (times < b)
            p = base.copy()
            p[i] = base[i] * (1 + lift)
            others = [j for j in range(len(FRAMES)) if j != i]
            p[others] = base[others] * (1 - p[i]) / base[others].sum()
            probs[inside] = p
        u = rng.random(n)
        picks = (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
        items.extend((float(t), w, FRAMES[min(int(k), 3)]) for t, k in zip(times, picks, strict=True))
    items.sort()
    return items


def oracle_recall(items: list[tuple[float, int, str]], spikes: list[tuple[int, str, float, float]], alpha: float) -> float:
    """Recall of an oracle that knows each spike's exact hour and the true base share.

    It tests only that hour's count with an exact binomial test at *alpha*, which is 1 false
    alert per watch-week when every frame's every whole hour is tested once. No detector that
    must find the hour and estimate the baseline does better at that false-alert rate: an
    upper bound for the figures above.
    """
    from scipy.stats import binom

    times = np.array([t for t, _, _ in items])
    hits = 0
    for w, f, a, b in spikes:
        lo, hi = np.searchsorted(times, [a, b])
        window = [(iw, fr) for _, iw, fr in items[lo:hi] if iw == w]
        n = len(window)
        count = sum(fr == f for _, fr in window)
        p0 = SHARES[FRAMES.index(f)]
        hits += bool(n and binom.sf(count - 1, n, p0) <= alpha)
    return round(hits / max(1, len(spikes)), 3)


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    total_h = args.warmup_h + args.days * 24
    spikes = plant(rng, args.watches, args.warmup_h, args.days * 24, args.spike_every_h)
    items = stream(rng, args.watches, total_h, args.rate, args.lift, spikes)
    cfg = SpikeConfig(z_threshold=args.z, min_count=args.min_count, min_lift=args.min_lift,
                      cooldown_s=args.cooldown_h * 3600)
    state = AggregateState()
    detector = SpikeDetector(cfg)
    alerts: list[tuple[int, str, float]] = []
    started = time.perf_counter()
    step = 300
    i = 0
    t = T0.timestamp()
    end = T0.timestamp() + total_h * 3600
    warm_end = T0.timestamp() + args.warmup_h * 3600
    n = 0
    while t < end:
        t += step
        batch = []
        while i < len(items) and items[i][0] < t:
            ts, w, f = items[i]
            batch.append(AggregateContribution(
                key=f"w{w}:{i}", partition=0, watch_id=f"w{w}",
                published_at=datetime.fromtimestamp(ts, UTC), frame=f, segment_frames={f: 1},
            ))
            i += 1
        # items become visible a little after publication (ingest + framing delay)
        now = t + args.delay_s
        state.apply(batch)
        n += len(batch)
        if now < warm_end:
            continue
        for w in sorted({c.watch_id for c in batch}):
            for ev in detector.evaluate(state, w, state.frames[w], now, state.first_seen):
                alerts.append((int(w[1:]), ev.frame, now))
    elapsed = time.perf_counter() - started
    matched: set[int] = set()
    delays = []
    false_alerts = 0
    false_by_frame = dict.fromkeys(FRAMES, 0)
    for w, f, at in alerts:
        hit = next((k for k, (sw, sf, a, b) in enumerate(spikes) if sw == w and sf == f and a <= at < b + 3600), None)
        if hit is None:
            false_alerts += 1
            false_by_frame[f] += 1
        elif hit not in matched:
            matched.add(hit)
            delays.append(at - spikes[hit][2])
    per_share = {}
    for frame, share in zip(FRAMES[:3], SHARES[:3], strict=True):
        mine = [k for k, s in enumerate(spikes) if s[1] == frame]
        per_share[f"{share}"] = round(sum(k in matched for k in mine) / max(1, len(mine)), 3)
    weeks = args.watches * args.days / 7
    oracle = oracle_recall(items, spikes, alpha=1 / (len(FRAMES) * 168))
    true_alerts = len(alerts) - false_alerts
    return {
        "bench": "spikes",
        "watches": args.watches, "days": args.days, "rate_per_h": args.rate, "lift": args.lift,
        "planted": len(spikes), "alerts": len(alerts),
        "recall": round(len(matched) / max(1, len(spikes)), 3),
        "recall_by_base_share": per_share,
        "precision": round(true_alerts / max(1, len(alerts)), 3),
        "false_alerts_per_week": round(false_alerts / weeks, 3),
        "false_alerts_by_frame": false_by_frame,
        "oracle_recall": oracle,
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "z_threshold": args.z, "items": n, "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--warmup-h", type=float, default=48.0)
    parser.add_argument("--rate", type=float, default=100.0, help="items per hour per watch")
    parser.add_argument("--lift", type=float, default=0.5, help="relative share rise of a planted spike")
    parser.add_argument("--spike-every-h", type=float, default=18.0)
    parser.add_argument("--z", type=float, default=DEFAULTS.z_threshold)
    parser.add_argument("--min-count", type=int, default=DEFAULTS.min_count)
    parser.add_argument("--min-lift", type=float, default=DEFAULTS.min_lift)
    parser.add_argument("--cooldown-h", type=float, default=DEFAULTS.cooldown_s / 3600)
    parser.add_argument("--delay-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    result = run(parser.parse_args())
    for k, v in result.items():
        print(f"{k:>24}: {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
