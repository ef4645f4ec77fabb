"""Emergent framings: online clustering of relevant segments that no codebook frame claimed.

A leader/centroid clusterer: a vector joins the most similar centroid at or above ``threshold``,
or founds a new cluster. Centroids that drift within ``merge_threshold`` of each other merge into
the older one, whose id survives; the younger id becomes an alias. Weights decay with a half-life
so stale clusters fade and are retired, and a small cluster (``stale_size`` members or fewer)
that saw nothing for ``stale_days`` is retired as a fragment. With ``calibrate`` both thresholds
come from the embedding's own similarity distribution (median + z robust deviations, MAD, of
the pairwise cosines of the first vectors seen; robust, because a stream's first vectors hold
few stories and their same-story pairs would inflate a plain standard deviation): a fixed cosine means different things for different models
and topics, and too high a join threshold fragments one story into many clusters. **Ids are never recycled** (a counter only grows) and the
state saves to JSON + npz, so a cluster seen yesterday keeps its id today and after a restart.

Each cluster carries its size, representative passages (closest to the centroid) and a keyword
label by class-based TF-IDF over the words of its members (as BERTopic's c-TF-IDF).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from framewatch.contracts import EMERGENT_PREFIX

_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TERMS = 300
POOL_SIZE = 12


def emergent_id(cluster_id: int) -> str:
    """Frame id of an emergent cluster, as it appears in framed records."""
    return f"{EMERGENT_PREFIX}{cluster_id}"


def parse_emergent_id(value: str) -> int:
    """Cluster number from ``emergent:<n>`` or ``<n>``; raises ValueError otherwise."""
    text = value.removeprefix(EMERGENT_PREFIX)
    if not text.isdigit():
        raise ValueError(f"{value!r} is not a cluster id such as emergent:3")
    return int(text)


class Clusterer(Protocol):
    """What the frame stage needs from an online clusterer."""

    def partial_fit(self, vectors: np.ndarray, texts: Sequence[str], at: datetime) -> list[int]:
        """Add vectors (L2-normalised rows) seen at *at*; return each one's cluster id."""
        ...

    def predict(self, vectors: np.ndarray) -> list[int | None]:
        """Nearest live cluster of each vector, or None when none is close enough."""
        ...


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Knobs of the online clusterer (from Settings' emergent-framings section)."""

    threshold: float = 0.55
    merge_threshold: float = 0.8
    half_life_days: float = 14.0
    retire_weight: float = 0.05
    max_clusters: int = 500
    representatives: int = 3
    label_terms: int = 4
    stale_days: float = 7.0  # a cluster of at most stale_size members idle this long is retired (0: never)
    stale_size: int = 2
    calibrate: bool = False  # thresholds from the similarity distribution of the first vectors
    join_z: float = 4.0
    merge_z: float = 6.0
    calibration_size: int = 200  # vectors needed before calibrating


def calibrated_thresholds(vectors: np.ndarray, join_z: float, merge_z: float, sample: int = 600) -> tuple[float, float]:
    """(join, merge) thresholds: median + z robust standard deviations (1.4826 MAD) of the
    pairwise cosines of (the first *sample* of) *vectors*; join clamped to [0.3, 0.75], merge
    to [join + 0.1, 0.9]."""
    v = np.asarray(vectors, dtype=np.float32)[:sample]
    sims = (v @ v.T)[np.triu_indices(len(v), 1)]
    median = float(np.median(sims))
    spread = 1.4826 * float(np.median(np.abs(sims - median)))
    join = min(0.75, max(0.3, median + join_z * spread))
    merge = min(0.9, max(join + 0.1, median + merge_z * spread))
    return round(join, 4), round(merge, 4)


@dataclass(slots=True)
class Cluster:
    """One emergent cluster: its running centroid, decayed weight, words and passages."""

    id: int
    centroid_sum: np.ndarray
    size: int
    weight: float
    first_seen: float
    last_seen: float
    terms: Counter[str] = field(default_factory=Counter)
    pool: list[tuple[str, np.ndarray]] = field(default_factory=list)

    @property
    def centroid(self) -> np.ndarray:
        """Unit-length centroid."""
        norm = float(np.linalg.norm(self.centroid_sum))
        return self.centroid_sum / norm if norm > 0 else self.centroid_sum

    def representatives(self, n: int) -> list[str]:
        """The *n* pooled passages closest to the centroid."""
        if not self.pool:
            return []
        c = self.centroid
        sims = [float(vec @ c) for _, vec in self.pool]
        order = sorted(range(len(self.pool)), key=lambda i: (-sims[i], self.pool[i][0]))
        return [self.pool[i][0] for i in order[:n]]


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """What an analyst sees of a cluster (and what `codebook promote` writes)."""

    id: str
    label: str
    keywords: tuple[str, ...]
    size: int
    weight: float
    representatives: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime


@functools.cache
def _stop_words() -> frozenset[str]:
    # imported on first use: sklearn takes seconds to import and start-up should not wait
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"said", "says", "also", "would", "could", "one"}


def tokenize(text: str) -> list[str]:
    """Lower-case content words of *text* (stop words dropped)."""
    stop = _stop_words()
    return [t for t in (w.strip("'-") for w in _WORD.findall(text.lower())) if t and t not in stop]


def class_tfidf(term_counts: dict[int, Counter[str]], top_n: int) -> dict[int, list[str]]:
    """Top *top_n* keywords per class by c-TF-IDF: tf within the class times log(1 + A / f_t)."""
    totals: Counter[str] = Counter()
    for counts in term_counts.values():
        totals.update(counts)
    if not totals:
        return {cid: [] for cid in term_counts}
    avg_words = sum(totals.values()) / max(1, len(term_counts))
    out: dict[int, list[str]] = {}
    for cid, counts in term_counts.items():
        n = sum(counts.values()) or 1
        scored = [
            (counts[t] / n * math.log(1 + avg_words / totals[t]), t) for t in counts if counts[t] > 0
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        out[cid] = [t for _, t in scored[:top_n]]
    return out


class OnlineClusterer:
    """Leader/centroid online clusterer with merging, decay and stable, never-recycled ids."""

    def __init__(self, config: ClusterConfig | None = None, dim: int | None = None) -> None:
        self.config = config or ClusterConfig()
        self.threshold = self.config.threshold
        self.merge_threshold = self.config.merge_threshold
        self.calibrated = False
        self.dim = dim
        self.clusters: dict[int, Cluster] = {}
        self.aliases: dict[int, int] = {}
        self.next_id = 1
        self.clock = 0.0  # latest time seen, seconds since the epoch; never goes back
        self.ids_changed = False  # a cluster was founded, merged or retired since the last save
        self.changed = False  # anything changed since the last save

    # --- the Clusterer protocol ----------------------------------------------------------------

    def partial_fit(self, vectors: np.ndarray, texts: Sequence[str], at: datetime) -> list[int]:
        """Add vectors seen at *at* in order; return each one's cluster id (at assignment time)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.config.calibrate and not self.calibrated and len(vectors) >= self.config.calibration_size:
            self.threshold, self.merge_threshold = calibrated_thresholds(vectors, self.config.join_z, self.config.merge_z)
            self.calibrated = self.ids_changed = True
        self._advance(at)
        ids: list[int] = []
        self.changed = self.changed or len(vectors) > 0
        for vec, text in zip(vectors, texts, strict=True):
            ids.append(self._add(vec, text))
        self._merge_close()
        self._retire()
        return ids

    def predict(self, vectors: np.ndarray) -> list[int | None]:
        """Nearest live cluster of each vector at or above the threshold, else None."""
        ids, centroids = self._centroids()
        if not ids:
            return [None] * len(vectors)
        sims = np.asarray(vectors, dtype=np.float32) @ centroids.T
        best = sims.argmax(axis=1)
        return [
            ids[int(b)] if sims[i, b] >= self.threshold else None for i, b in enumerate(best)
        ]

    # --- reading ------------------------------------------------------------------------------

    def resolve(self, cluster_id: int) -> int:
        """The live id a (possibly merged) cluster id now lives under."""
        seen = set()
        while cluster_id in self.aliases and cluster_id not in seen:
            seen.add(cluster_id)
            cluster_id = self.aliases[cluster_id]
        return cluster_id

    def summaries(self, min_size: int = 1) -> list[ClusterSummary]:
        """Every live cluster of at least *min_size* members, largest first."""
        live = {cid: c for cid, c in self.clusters.items() if c.size >= min_size}
        keywords = class_tfidf({cid: c.terms for cid, c in self.clusters.items()}, self.config.label_terms)
        out = [
            ClusterSummary(
                id=emergent_id(cid),
                label=" / ".join(keywords.get(cid, [])) or f"cluster {cid}",
                keywords=tuple(keywords.get(cid, [])),
                size=c.size,
                weight=round(c.weight, 4),
                representatives=tuple(c.representatives(self.config.representatives)),
                first_seen=_from_ts(c.first_seen),
                last_seen=_from_ts(c.last_seen),
            )
            for cid, c in live.items()
        ]
        out.sort(key=lambda s: (-s.size, parse_emergent_id(s.id)))
        return out

    def summary(self, cluster_id: int) -> ClusterSummary | None:
        """Summary of one cluster (merged ids resolve to their survivor), or None if retired."""
        live_id = self.resolve(cluster_id)
        return next((s for s in self.summaries() if s.id == emergent_id(live_id)), None)

    # --- internals ----------------------------------------------------------------------------

    def _centroids(self) -> tuple[list[int], np.ndarray]:
        ids = sorted(self.clusters)
        if not ids:
            return [], np.zeros((0, self.dim or 1), dtype=np.float32)
        return ids, np.stack([self.clusters[i].centroid for i in ids]).astype(np.float32)

    def _advance(self, at: datetime) -> None:
        now = at.timestamp()
        if now <= self.clock:
            return
        if self.clock > 0:
            factor = 0.5 ** ((now - self.clock) / 86400 / self.config.half_life_days)
            for c in self.clusters.values():
                c.weight *= factor
        self.clock = now

    def _add(self, vec: np.ndarray, text: str) -> int:
        if self.dim is None:
            self.dim = int(vec.shape[0])
        ids, centroids = self._centroids()
        if ids:
            sims = centroids @ vec
            best = int(sims.argmax())
            if sims[best] >= self.threshold:
                cluster = self.clusters[ids[best]]
                cluster.centroid_sum = cluster.centroid_sum + vec
                cluster.size += 1
                cluster.weight += 1.0
                cluster.last_seen = self.clock
                self._remember(cluster, text, vec)
                return cluster.id
        cid = self.next_id
        self.next_id += 1
        self.ids_changed = True
        cluster = Cluster(cid, vec.astype(np.float32).copy(), 1, 1.0, self.clock, self.clock)
        self._remember(cluster, text, vec)
        self.clusters[cid] = cluster
        return cid

    def _remember(self, cluster: Cluster, text: str, vec: np.ndarray) -> None:
        cluster.terms.update(tokenize(text))
        if len(cluster.terms) > MAX_TERMS:
            cluster.terms = Counter(dict(cluster.terms.most_common(MAX_TERMS)))
        self._remember_passage(cluster, text, vec.astype(np.float32).copy())

    def _merge_close(self) -> None:
        merged = True
        while merged and len(self.clusters) > 1:
            merged = False
            ids, centroids = self._centroids()
            sims = centroids @ centroids.T
            np.fill_diagonal(sims, -1.0)
            i, j = np.unravel_index(int(sims.argmax()), sims.shape)
            if sims[i, j] >= self.merge_threshold:
                keep, gone = sorted((ids[int(i)], ids[int(j)]))
                self._absorb(self.clusters[keep], self.clusters.pop(gone))
                self.aliases[gone] = keep
                self.ids_changed = True
                merged = True

    def _absorb(self, keep: Cluster, gone: Cluster) -> None:
        keep.centroid_sum = keep.centroid_sum + gone.centroid_sum
        keep.size += gone.size
        keep.weight += gone.weight
        keep.first_seen = min(keep.first_seen, gone.first_seen)
        keep.last_seen = max(keep.last_seen, gone.last_seen)
        keep.terms.update(gone.terms)
        for text, vec in gone.pool:
            self._remember_passage(keep, text, vec)

    def _remember_passage(self, cluster: Cluster, text: str, vec: np.ndarray) -> None:
        if any(t == text for t, _ in cluster.pool):
            return
        cluster.pool.append((text, vec))
        if len(cluster.pool) > POOL_SIZE:
            c = cluster.centroid
            cluster.pool.pop(min(range(len(cluster.pool)), key=lambda i: float(cluster.pool[i][1] @ c)))

    def _retire(self) -> None:
        stale = self.clock - self.config.stale_days * 86400 if self.config.stale_days > 0 else float("-inf")
        faded = [
            cid for cid, c in self.clusters.items()
            if c.weight < self.config.retire_weight or (c.size <= self.config.stale_size and c.last_seen < stale)
        ]
        for cid in faded:
            del self.clusters[cid]
            self.ids_changed = True
        if len(self.clusters) > self.config.max_clusters:
            by_weight = sorted(self.clusters, key=lambda cid: (self.clusters[cid].weight, -cid))
            for cid in by_weight[: len(self.clusters) - self.config.max_clusters]:
                del self.clusters[cid]

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write state to ``<path>.json`` and ``<path>.npz`` atomically (ids survive restarts)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = sorted(self.clusters)
        meta: dict[str, Any] = {
            "version": 1,
            "next_id": self.next_id,
            "clock": self.clock,
            "dim": self.dim,
            "thresholds": [self.threshold, self.merge_threshold] if self.calibrated else None,
            "aliases": {str(k): v for k, v in sorted(self.aliases.items())},
            "clusters": [
                {
                    "id": cid,
                    "size": self.clusters[cid].size,
                    "weight": self.clusters[cid].weight,
                    "first_seen": self.clusters[cid].first_seen,
                    "last_seen": self.clusters[cid].last_seen,
                    "terms": dict(self.clusters[cid].terms.most_common(MAX_TERMS)),
                    "pool": [t for t, _ in self.clusters[cid].pool],
                }
                for cid in ids
            ],
        }
        arrays: dict[str, np.ndarray] = {}
        for cid in ids:
            c = self.clusters[cid]
            arrays[f"c{cid}"] = c.centroid_sum.astype(np.float32)
            if c.pool:
                arrays[f"p{cid}"] = np.stack([v for _, v in c.pool]).astype(np.float32)
        _atomic_write(path.with_suffix(".npz"), lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
        _atomic_write(
            path.with_suffix(".json"),
            lambda f: f.write(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")),
        )
        self.ids_changed = self.changed = False

    @classmethod
    def load(cls, path: Path, config: ClusterConfig | None = None) -> OnlineClusterer:
        """Read state saved by :meth:`save`; a missing file gives an empty clusterer."""
        self = cls(config)
        meta_path, arr_path = path.with_suffix(".json"), path.with_suffix(".npz")
        if not meta_path.exists() or not arr_path.exists():
            return self
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arr_path) as arrays:
            self.next_id = int(meta["next_id"])
            self.clock = float(meta["clock"])
            self.dim = meta.get("dim")
            if meta.get("thresholds"):  # calibrated once, kept: a restart must not move the cut
                self.threshold, self.merge_threshold = (float(x) for x in meta["thresholds"])
                self.calibrated = True
            self.aliases = {int(k): int(v) for k, v in meta["aliases"].items()}
            for row in meta["clusters"]:
                cid = int(row["id"])
                pool_vecs = arrays[f"p{cid}"] if f"p{cid}" in arrays else np.zeros((0, 1))
                self.clusters[cid] = Cluster(
                    id=cid,
                    centroid_sum=arrays[f"c{cid}"].astype(np.float32),
                    size=int(row["size"]),
                    weight=float(row["weight"]),
                    first_seen=float(row["first_seen"]),
                    last_seen=float(row["last_seen"]),
                    terms=Counter(row["terms"]),
                    pool=list(zip(row["pool"], list(pool_vecs), strict=False)),
                )
        return self


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC) if ts > 0 else _EPOCH


STREAM_CONFIG = ClusterConfig(calibrate=True)


def cluster_stream(
    texts: Sequence[str], embedder: Any, config: ClusterConfig | None = None, times: Sequence[datetime] | None = None,
) -> list[str]:
    """Cluster *texts* in order as a stream; return each text's final ``emergent:<id>`` (for eval).

    Texts are fed online in order (with *times*, one micro-batch per distinct time, so stale
    fragments retire as they would live; the first ``calibration_size`` calibrate); each then
    gets the live cluster nearest its vector (merged ids resolved), so early texts benefit from
    the centroids that formed later.
    """
    if not texts:
        return []
    config = config or STREAM_CONFIG
    vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    clusterer = OnlineClusterer(config)
    if times is None:
        first = clusterer.partial_fit(vectors, texts, datetime.now(UTC))
    else:
        head = min(len(texts), config.calibration_size) if config.calibrate else 1
        first = clusterer.partial_fit(vectors[:head], texts[:head], max(times[:head]))
        for n in range(head, len(texts)):
            first.extend(clusterer.partial_fit(vectors[n : n + 1], texts[n : n + 1], times[n]))
        first = [clusterer.resolve(a) for a in first]
    final = clusterer.predict(vectors)
    return [
        emergent_id(f if f is not None else clusterer.resolve(a)) for f, a in zip(final, first, strict=True)
    ]
