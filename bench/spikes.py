"""Change detection on synthetic streams with planted spikes, steps or ramps of known size.

Each watch gets Poisson arrivals (``--rate`` items/h on average, following a day/night cycle
five times busier by day than at night) framed by fixed base shares. Every ``--every-h`` hours
(jittered, never aligned to the hour) one codebook frame's share is raised by ``--lift``
(relative, 0.5 = +50%; ``--direction down``: lowered by the mirror image, 1 / (1 + lift), -1/3
for +50%), the other frames moving the other way in proportion (volume unchanged):

* ``--shape spike``: for one hour;
* ``--shape step``: for ``--step-hours`` (6 or 24);
* ``--shape ramp``: rising linearly to twice its share over 3 days (down: falling to half;
  ``--lift`` unused), then back at once.

Items go through the real AggregateState in 5 min micro-batches after a warm-up that fills
the baselines, and two systems watch the same stream: ``baseline``, today's spike detector
alone (a fixed score threshold, ``--z``), and the full set (the spike rule with its threshold
calibrated to ``--spike-rate`` false alarms per watch x frame and week, the binomial CUSUMs for
rises and falls and the ramp GLR for drifts at ``--sensitivity``). An alert matches a planted change when it names the same
watch and frame, says the planted direction and is raised between the change's start and one
hour after its end. Shares sum to one, so a planted change is also a true change of the watch's
other frames: they move the other way while it lasts and back when it ends (after a ramp that
doubled a 40% share, the others jump threefold at once). An alert on another frame that says the
way that frame really moved (against the planted direction between the start and an hour after
the end; with it, the return, up to a day after the end of a change that lasted a day or more)
is counted apart as ``consequential``,
not as false; anything else is a false alert (all detectors together).

``oracle_recall`` is the recall of an exact test that knows the change's onset, its shape and
the true base share, at one false alert per watch-week (alpha = 1 / (frames x 168)): for a
spike it tests the spike's hour; for a step its first 3 hours (the delay target); for a ramp
its first day with the matched (linear) weights; one-sided in the planted direction. It tests
one window, where a detector that must find the onset scans every 5 min: at the same rate the
detector needs a higher threshold (the scan's multiplicity), which is the bound's advantage. No detector that must find the onset and
estimate the baseline does better within the same time at that rate: an upper bound.

Prints the figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from framewatch.contracts import AggregateContribution
from framewatch.processing.changes.calibrate import DAY_CYCLE
from framewatch.processing.changes.detector import ChangeConfig, ChangeDetector
from framewatch.processing.trends.counts import AggregateState
from framewatch.processing.trends.spikes import SpikeConfig, SpikeDetector

FRAMES = ("surveillance", "trust", "fairness", "unframed")
SHARES = (0.4, 0.3, 0.2, 0.1)
T0 = datetime(2026, 1, 5, tzinfo=UTC)
DEFAULTS = SpikeConfig()
RAMP_H = 72.0
EVERY_H = {"spike": 18.0, "step": 48.0, "ramp": 144.0}
ORACLE_H = {"spike": 1.0, "step": 3.0, "ramp": 24.0}

Change = tuple[int, str, float, float]  # watch, frame, start_s, end_s


def duration_h(args: argparse.Namespace) -> float:
    """How long a planted change lasts."""
    return {"spike": 1.0, "step": args.step_hours, "ramp": RAMP_H}[args.shape]


def plant(rng: np.random.Generator, watches: int, warmup_h: float, hours: float, every_h: float, length_h: float) -> list[Change]:
    """Planted changes: (watch, frame, start_s, end_s), spaced *every_h* hours with jitter."""
    changes = []
    for w in range(watches):
        t = warmup_h + rng.uniform(2, every_h)
        while t + length_h < warmup_h + hours:
            frame = FRAMES[int(rng.integers(0, 3))]  # the three codebook frames
            start = T0.timestamp() + t * 3600 + float(rng.uniform(60, 3540))
            changes.append((w, frame, start, start + length_h * 3600))
            t += every_h + rng.uniform(0, every_h / 2)
    return changes


def lift_at(shape: str, lift: float, times: np.ndarray, a: float, b: float, up: bool = True) -> np.ndarray:
    """Relative change of the share at *times* inside [a, b)."""
    if shape == "ramp":  # 0 to +100% (the share doubles) or to -50% (it halves) over the ramp
        return (times - a) / (b - a) * (1.0 if up else -0.5)
    return np.full(times.shape, lift if up else -lift / (1 + lift))


def stream(rng: np.random.Generator, watches: int, total_h: float, rate: float, lift: float, shape: str,
           changes: list[Change], up: bool = True) -> list[tuple[float, int, str]]:
    """Items (published_s, watch, frame) in time order."""
    items = []
    base = np.array(SHARES)
    by_watch: dict[int, list[tuple[str, float, float]]] = {}
    for w, f, a, b in changes:
        by_watch.setdefault(w, []).append((f, a, b))
    hours = int(np.ceil(total_h))
    for w in range(watches):
        per_hour = rng.poisson(rate * np.resize(DAY_CYCLE, hours))
        hour_of = np.repeat(np.arange(hours), per_hour)
        times = np.sort(T0.timestamp() + (hour_of + rng.random(len(hour_of))) * 3600)
        n = len(times)
        probs = np.tile(base, (n, 1))
        for f, a, b in by_watch.get(w, []):
            i = FRAMES.index(f)
            inside = (times >= a) & (times < b)
            p_i = base[i] * (1 + lift_at(shape, lift, times[inside], a, b, up))
            others = [j for j in range(len(FRAMES)) if j != i]
            probs[np.ix_(inside, others)] = base[others] * ((1 - p_i) / (1 - base[i]))[:, None]
            probs[inside, i] = p_i
        u = rng.random(n)
        picks = (u[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
        items.extend((float(t), w, FRAMES[min(int(k), 3)]) for t, k in zip(times, picks, strict=True))
    items.sort()
    return items


def oracle_recall(items: list[tuple[float, int, str]], changes: list[Change], shape: str, alpha: float,
                  up: bool = True) -> float:
    """Recall of an exact test that knows each change's onset, shape and true base share (see
    the module docstring): it tests the first ORACLE_H hours of the change once."""
    from scipy.stats import binom, norm

    times = np.array([t for t, _, _ in items])
    hits = 0
    for w, f, a, b in changes:
        end = min(b, a + ORACLE_H[shape] * 3600)
        lo, hi = np.searchsorted(times, [a, end])
        window = [(t, fr) for t, iw, fr in items[lo:hi] if iw == w]
        p0 = SHARES[FRAMES.index(f)]
        if not window:
            continue
        if shape == "ramp":  # the matched filter: hour weights rising with the ramp
            t = np.array([x for x, _ in window])
            y = np.array([fr == f for _, fr in window], dtype=np.float64)
            wt = (t - a) / 3600
            z = float((wt * (y - p0)).sum() / np.sqrt((wt * wt).sum() * p0 * (1 - p0)))
            hits += bool((norm.sf(z) if up else norm.cdf(z)) <= alpha)
        else:
            count = sum(fr == f for _, fr in window)
            tail = binom.sf(count - 1, len(window), p0) if up else binom.cdf(count, len(window), p0)
            hits += bool(tail <= alpha)
    return round(hits / max(1, len(changes)), 3)


Alerted = tuple[int, str, float, float, str, bool]  # watch, frame, raised at, change point, kind, up


def consequential(alert: Alerted, changes: list[Change], up: bool) -> bool:
    """True when *alert* reports a true move of a frame caused by a planted change (see the
    module docstring): another frame the other way while it lasts, or any frame of the watch
    coming back when it ends."""
    w, f, at, _, _, rose = alert
    for sw, sf, a, b in changes:
        if sw != w:
            continue
        if sf != f and rose != up and a <= at < b + 3600:
            return True
        # a return moves a frame against its baselines only after a change long enough to have
        # moved them (a day or more: a 1 h spike or a 6 h step leaves the 48 h baseline near)
        if (rose == up) == (sf != f) and b - a >= 86400 and b <= at < b + 86400:
            return True
    return False


def score(alerts: list[Alerted], changes: list[Change], weeks: float, up: bool = True) -> dict[str, object]:
    """Recall, false alerts per watch-week, delays and change-point errors of one system."""
    matched: dict[int, Alerted] = {}
    false_alerts = others = 0
    false_by_kind: dict[str, int] = {}
    late = nearby = 0
    for alert in alerts:
        w, f, at, _, _, rose = alert
        hit = next((k for k, (sw, sf, a, b) in enumerate(changes)
                    if sw == w and sf == f and a <= at < b + 3600 and rose == up), None)
        if hit is None and consequential(alert, changes, up):
            others += 1
        elif hit is None:
            false_alerts += 1
            false_by_kind[alert[4]] = false_by_kind.get(alert[4], 0) + 1
            # a late echo of a planted change (same watch and frame, within a day of its end)
            late += any(sw == w and sf == f and b + 3600 <= at < b + 86400 for sw, sf, _, b in changes)
            # on another frame of a watch while one of its frames changes (shares sum to 1: when
            # one rises the others fall, and rise again when it ends), or within a day after
            nearby += any(sw == w and a <= at < b + 86400 for sw, _, a, b in changes)
        elif hit not in matched:
            matched[hit] = alert
    delays = [m[2] - changes[k][2] for k, m in matched.items()]
    # the change point of the first alert that estimates one (a shift or drift), else a spike's window
    estimates = dict(matched)
    for alert in alerts:
        k = next((k for k, (sw, sf, a, b) in enumerate(changes)
                  if sw == alert[0] and sf == alert[1] and a <= alert[2] < b + 3600 and alert[5] == up), None)
        if k is not None and alert[4] != "spike" and estimates[k][4] == "spike":
            estimates[k] = alert
    errors = [abs(m[3] - changes[k][2]) for k, m in estimates.items()]
    kinds: dict[str, int] = {}
    for m in matched.values():
        kinds[m[4]] = kinds.get(m[4], 0) + 1
    return {
        "recall": round(len(matched) / max(1, len(changes)), 3),
        "recall_within_1d": round(sum(d <= 86400 for d in delays) / max(1, len(changes)), 3),
        "false_alerts_per_week": round(false_alerts / weeks, 3),
        "consequential_alerts_per_week": round(others / weeks, 3),
        "median_delay_s": round(statistics.median(delays), 1) if delays else None,
        "change_point_error_s": round(statistics.median(errors), 1) if errors else None,
        "change_point_within_1h": round(sum(e <= 3600 for e in errors) / max(1, len(errors)), 3),
        "false_alerts_by_kind": false_by_kind, "false_alerts_within_1d_after_a_change": late,
        "false_alerts_per_week_away_from_changes": round((false_alerts - nearby) / weeks, 3), "alerts": len(alerts), "first_alert_kinds": kinds,
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    rng = np.random.default_rng(args.seed)
    hours = args.hours if args.hours is not None else args.days * 24
    total_h = args.warmup_h + hours
    every = args.every_h or EVERY_H[args.shape] + (args.step_hours if args.shape == "step" else 0)
    changes = plant(rng, args.watches, args.warmup_h, hours, every, duration_h(args))
    up = args.direction == "up"
    items = stream(rng, args.watches, total_h, args.rate, args.lift, args.shape, changes, up)
    cfg = SpikeConfig(z_threshold=args.z, min_count=args.min_count, min_lift=args.min_lift,
                      cooldown_s=args.cooldown_h * 3600, false_alarms_per_week=None)
    state = AggregateState()
    today = SpikeDetector(cfg)  # the hand-picked z of the spike rule alone
    spikes = SpikeDetector(replace(cfg, false_alarms_per_week=args.spike_rate))
    shifts = ChangeDetector(ChangeConfig(sensitivity=args.sensitivity))
    baseline: list[Alerted] = []
    full: list[Alerted] = []
    started = time.perf_counter()
    i, t, n = 0, T0.timestamp(), 0
    end = T0.timestamp() + total_h * 3600
    warm_end = T0.timestamp() + args.warmup_h * 3600
    while t < end:
        t += 300
        batch = []
        while i < len(items) and items[i][0] < t:
            ts, w, f = items[i]
            batch.append(AggregateContribution(
                key=f"w{w}:{i}", partition=0, watch_id=f"w{w}",
                published_at=datetime.fromtimestamp(ts, UTC), frame=f, segment_frames={f: 1},
            ))
            i += 1
        now = t + args.delay_s  # items become visible a little after publication
        state.apply(batch)
        n += len(batch)
        if now < warm_end:
            continue
        for w in sorted(state.frames):
            wi = int(w[1:])
            for ev in today.evaluate(state, w, state.frames[w], now, state.first_seen):
                baseline.append((wi, ev.frame, now, ev.window_start_s, "spike", True))
            for ev in spikes.evaluate(state, w, state.frames[w], now, state.first_seen):
                full.append((wi, ev.frame, now, ev.window_start_s, "spike", True))
            for ch in shifts.evaluate(state, w, state.frames[w], now):
                full.append((wi, ch.frame, now, ch.change_point_s, ch.kind, ch.share_after >= ch.share_before))
    elapsed = time.perf_counter() - started
    weeks = args.watches * hours / 168
    mine = score(full, changes, weeks, up)
    return {
        "bench": "spikes", "shape": args.shape, "direction": args.direction,
        "length_h": duration_h(args), "watches": args.watches, "hours": hours, "rate_per_h": args.rate,
        "lift": args.lift if args.shape != "ramp" else 1.0, "sensitivity": args.sensitivity,
        "planted": len(changes), **mine,
        "oracle_recall": oracle_recall(items, changes, args.shape, alpha=1 / (len(FRAMES) * 168), up=up),
        "oracle_within_h": ORACLE_H[args.shape],
        "baseline": score(baseline, changes, weeks, up),
        "z_threshold": args.z, "spike_rate_per_frame_week": args.spike_rate, "items": n, "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("spike", "step", "ramp"), default="spike")
    parser.add_argument("--direction", choices=("up", "down"), default="up", help="planted rises or falls")
    parser.add_argument("--step-hours", type=float, default=6.0, help="how long a planted step lasts")
    parser.add_argument("--watches", type=int, default=10)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--hours", type=float, default=None, help="hours watched after the warm-up (default: --days)")
    parser.add_argument("--warmup-h", type=float, default=240.0, help="history before watching: the shift and drift baseline is the week before a 3-day window")
    parser.add_argument("--rate", type=float, default=100.0, help="mean items per hour per watch")
    parser.add_argument("--lift", type=float, default=0.5, help="relative share rise of a planted spike or step")
    parser.add_argument("--every-h", type=float, default=None, help="hours between planted changes (default per shape)")
    parser.add_argument("--sensitivity", choices=("low", "medium", "high"), default="medium")
    parser.add_argument("--z", type=float, default=DEFAULTS.z_threshold, help="today's spike rule: a fixed score threshold")
    parser.add_argument("--spike-rate", type=float, default=DEFAULTS.false_alarms_per_week,
                        help="the full set's spike rule: false alarms per watch x frame and week it is calibrated to")
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
