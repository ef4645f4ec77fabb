"""Development sets we may redistribute: synthetic long multi-frame articles and a labelled
news-title stream, written as JSONL that ``framewatch eval`` reads.

No openly licensed long-article frame corpus exists (issue #15), so **articles** are composed:
each gets 1-3 frames, two or three labelled headlines per frame (headlines of its own fold
only, so cross-validation never sees a test headline in training) set as sentences into
paragraphs of neutral filler sentences written for this project, several hundred words in all.
Its labels are the union of its headlines' labels.

The **news stream** is generated from hand-written events (a YAML file: per event a few facts
and several headline templates); each title fills a template with facts, and the titles of all
events interleave in time order like a wire feed. The event is the label.

    python -m framewatch.processing.analyst.devsets articles HEADLINES.jsonl FILLER.txt OUT.jsonl
    python -m framewatch.processing.analyst.devsets stream EVENTS.yaml OUT.jsonl
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from framewatch.errors import ConfigError
from framewatch.processing.framing.train import LabelledText

N_FOLDS = 5
FRAME_COUNTS = ((1, 0.25), (2, 0.45), (3, 0.30))  # share of articles with 1, 2, 3 frames


def read_filler(path: str | Path) -> list[str]:
    """Filler sentences: one a line, ``#`` comments and blank lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(out) < 10:
        raise ConfigError(f"{path}: needs at least 10 filler sentences, has {len(out)}")
    return out


def _sentence(headline: str) -> str:
    text = headline.strip()
    return text if text[-1:] in ".!?" else f"{text}."


def compose_articles(
    headlines: Sequence[LabelledText],
    filler: Sequence[str],
    *,
    n: int = 430,
    seed: int = 0,
    min_words: int = 300,
    max_words: int = 500,
) -> list[dict[str, Any]]:
    """*n* synthetic articles (``id``, ``title``, ``text``, ``labels``, ``fold``) from *headlines*
    (labels[0] the primary frame; ``fold`` 0-4, else by position) and *filler* sentences."""
    rng = np.random.default_rng(seed)
    pools: dict[int, dict[str, list[LabelledText]]] = {}
    for i, h in enumerate(headlines):
        if h.labels:
            fold = h.fold if h.fold is not None else i % N_FOLDS
            pools.setdefault(fold, {}).setdefault(h.labels[0], []).append(h)
    if not pools:
        raise ConfigError("no labelled headlines to compose articles from")
    folds = sorted(pools)
    used: dict[str, int] = {}
    counts, weights = zip(*FRAME_COUNTS, strict=True)
    out: list[dict[str, Any]] = []
    for a in range(n):
        fold = folds[a % len(folds)]
        by_frame = pools[fold]
        frames = sorted(by_frame)
        k = min(int(rng.choice(counts, p=weights)), len(frames))
        # rarer frames a little more often than their share, so each frame has positives to learn
        sizes = np.array([len(by_frame[f]) for f in frames], dtype=float)
        chosen = list(rng.choice(frames, size=k, replace=False, p=np.sqrt(sizes) / np.sqrt(sizes).sum()))
        paragraphs: list[list[str]] = []
        labels: list[str] = []
        title = ""
        for frame in chosen:
            # single-frame headlines first, so the labels are mostly the chosen frames
            pool = sorted(by_frame[frame], key=lambda h: (len(h.labels) > 1, used.get(h.id, 0), rng.random()))
            picks = pool[: int(rng.integers(2, 4))]
            for h in picks:
                used[h.id] = used.get(h.id, 0) + 1
                labels.extend(lab for lab in h.labels if lab not in labels)
            title = title or picks[0].text
            paragraphs.append([_sentence(h.text) for h in picks])
        paragraphs.extend([] for _ in range(int(rng.integers(1, 3))))
        target = int(rng.integers(min_words, max_words + 1))
        words = sum(len(s.split()) for p in paragraphs for s in p)
        fill = iter(rng.permutation(len(filler)).tolist() * 4)  # no sentence twice while there are fresh ones
        while words < target:
            sentence = filler[next(fill)]
            paragraphs[int(rng.integers(len(paragraphs)))].append(sentence)
            words += len(sentence.split())
        for p in paragraphs:
            rng.shuffle(p)
        order = rng.permutation(len(paragraphs))
        text = "\n\n".join(" ".join(paragraphs[j]) for j in order if paragraphs[j])
        out.append({"id": f"article-{a}", "title": title, "text": text, "labels": labels, "fold": fold})
    return out


# --- news stream ------------------------------------------------------------------------------


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events from YAML: a list of ``{id, facts: {name: [values]}, templates: [str]}``."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read events: {exc}") from exc
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not events:
        raise ConfigError(f"{path}: expected a top-level 'events' list")
    for n, e in enumerate(events):
        if not isinstance(e, dict) or not e.get("id") or not e.get("templates") or not isinstance(e.get("facts", {}), dict):
            raise ConfigError(f"{path}: events[{n}] needs id, facts (a mapping) and templates")
        for t in e["templates"]:
            names = {f for _, f, _, _ in string.Formatter().parse(t) if f}
            missing = names - set(e.get("facts", {}))
            if missing:
                raise ConfigError(f"{path}: events[{n}] ({e['id']}) template {t!r} uses unknown facts {sorted(missing)}")
    return list(events)


def compose_stream(
    events: Sequence[dict[str, Any]], *, per_event: int = 16, seed: int = 0, start: datetime | None = None,
) -> list[dict[str, Any]]:
    """Titles (``id``, ``text``, ``labels`` = [event id], ``published_at``) of all *events*,
    interleaved in time: each event starts at a random hour of a two-week window and its titles
    follow over the next two days; distinct titles only."""
    rng = np.random.default_rng(seed)
    t0 = start or datetime(2026, 3, 2, tzinfo=UTC)
    rows: list[tuple[datetime, str, str]] = []
    for e in events:
        begin = t0 + timedelta(hours=float(rng.uniform(0, 14 * 24)))
        seen: set[str] = set()
        for _ in range(per_event * 8):
            if len(seen) >= per_event:
                break
            template = e["templates"][int(rng.integers(len(e["templates"])))]
            facts = {k: str(v[int(rng.integers(len(v)))]) if isinstance(v, list) else str(v) for k, v in e.get("facts", {}).items()}
            title = template.format(**facts)
            if title not in seen:
                seen.add(title)
                rows.append((begin + timedelta(hours=float(rng.exponential(12.0))), str(e["id"]), title))
    rows.sort()
    return [
        {"id": f"title-{i}", "text": text, "labels": [event], "published_at": at.isoformat()}
        for i, (at, event, text) in enumerate(rows)
    ]


def write_jsonl(rows: Sequence[dict[str, Any]], out: str | Path) -> None:
    """One JSON object per line."""
    with Path(out).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Build one development set (see the module docstring)."""
    from framewatch.processing.analyst.evaluate import load_labelled

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="what", required=True)
    arts = sub.add_parser("articles", help="synthetic long multi-frame articles")
    arts.add_argument("headlines")
    arts.add_argument("filler")
    arts.add_argument("out")
    arts.add_argument("--n", type=int, default=430)
    arts.add_argument("--seed", type=int, default=0)
    stream = sub.add_parser("stream", help="labelled news-title stream")
    stream.add_argument("events")
    stream.add_argument("out")
    stream.add_argument("--per-event", type=int, default=16)
    stream.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.what == "articles":
            rows = compose_articles(load_labelled(args.headlines), read_filler(args.filler), n=args.n, seed=args.seed)
        else:
            rows = compose_stream(read_events(args.events), per_event=args.per_event, seed=args.seed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
