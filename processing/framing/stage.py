"""The frame stage: a micro-batch of raw items in, one framed record per (item, watch) out.

Pure apart from its own bounded memory (no Kafka in it): decode, check each item (empty,
unsupported language, too long), segment, drop duplicate segments (they cost no embedding and say
what they duplicate), embed every new segment of the batch in **one** call, assign frames per
watch, cluster relevant unframed segments into emergent framings, and build the records.

Determinism: re-processing a raw record gives the same bytes. ``processed_at`` comes from the raw
message's timestamp (else the item's ``fetched_at``), never the wall clock; and every segment
decision (frame, cluster, duplicate-of) is remembered under ``(watch, text_hash)`` with the item
and segment that first made it. A re-delivered item finds its own decisions there and reuses them
(it is never a duplicate of itself, and never counted twice by the clusterer). The memory and the
clusters are saved at the end of each batch, before the loop produces, so a crash after produce
and before commit re-reads the batch into the same decisions.

Outcomes of bad input (reason names are metric labels, :data:`SKIP_REASONS`):

* not decodable -> dead-letter with the decode reason (``not_json``, ``invalid_field``, ...);
* no text at all (empty title and body) -> skipped, reason ``empty`` (no record: no text can
  match a watch, so "one record per matching watch" means none);
* mostly non-Latin letters (the default model is English) -> skipped, ``unsupported_language``;
* matches no watch -> skipped, ``no_watch``;
* longer than ``max_item_chars`` -> cut there, the last segment flagged ``truncated``;
* an unexpected error on one item -> dead-letter with reason ``processing_error``.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from framewatch import contracts
from framewatch.contracts import FramedItem, FramedSegment, FrameScore, MessageContext, RawItem
from framewatch.kafka_io import Failure, Message, Outgoing, StageOutput, decode_batch
from framewatch.processing.framing.cluster import ClusterConfig, OnlineClusterer, emergent_id
from framewatch.processing.framing.codebook import Codebook, Watch, watch_matches
from framewatch.processing.framing.decisions import Decision, SegmentMemory
from framewatch.processing.framing.dedup import Deduplicator
from framewatch.processing.framing.documents import document_fields
from framewatch.processing.framing.segment import segment_item

log = logging.getLogger(__name__)

EMPTY = "empty"
UNSUPPORTED_LANGUAGE = "unsupported_language"
NO_WATCH = "no_watch"
SKIP_REASONS = (EMPTY, UNSUPPORTED_LANGUAGE, NO_WATCH)
PROCESSING_ERROR = "processing_error"

# Segment outcomes (``processing_segments_total{outcome}``).
SEG_EMBEDDED = "embedded"
SEG_DUPLICATE = "duplicate"
SEG_REPEAT = "redelivered"
SEGMENT_OUTCOMES = (SEG_EMBEDDED, SEG_DUPLICATE, SEG_REPEAT)

METHOD = "embedding-similarity"
STATE_FILE = "segment-memory.jsonl"


@dataclass(frozen=True, slots=True)
class StageConfig:
    """Knobs of the frame stage (from Settings' processing sections)."""

    max_item_chars: int = 20_000
    max_segments: int = 200
    min_latin_ratio: float = 0.5
    min_letters_for_language: int = 20
    cluster_min_score: float = 0.3
    novelty_max: float = 0.5
    cluster_save_s: float = 30.0
    memory_segments: int = 100_000
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


@dataclass(slots=True)
class BatchReport:
    """Counts of one batch, for metrics (the stage itself stays free of Prometheus)."""

    skipped: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    embed_seconds: float = 0.0
    embedded_texts: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def segment(self, outcome: str, n: int = 1) -> None:
        self.segments[outcome] = self.segments.get(outcome, 0) + n


@dataclass(slots=True)
class _Pending:
    """One (item, watch) being built."""

    item: RawItem
    watch: Watch
    processed_at: datetime
    segments: list[Any]
    decisions: list[Decision | None]
    duplicate_of: list[str | None]


def latin_ratio(text: str) -> tuple[float, int]:
    """Share of letters in *text* that are Latin script, and the number of letters."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 1.0, 0
    latin = sum(1 for ch in letters if ch.isascii() or "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters), len(letters)


def processed_at_of(ctx: MessageContext | None, item: RawItem) -> datetime:
    """Deterministic processing time: the raw message's timestamp, else the item's fetch time."""
    if ctx is not None and ctx.timestamp_ms is not None and ctx.timestamp_ms > 0:
        return datetime.fromtimestamp(ctx.timestamp_ms / 1000, UTC)
    return item.fetched_at


class FrameStage:
    """Frames raw items against a codebook; call it on a batch of Messages (a run_stage stage)."""

    def __init__(
        self,
        codebook: Codebook,
        embedder: Any,
        *,
        framed_topic: str = "framed-items",
        config: StageConfig | None = None,
        state_dir: Path | None = None,
        assigners: dict[str, Any] | None = None,
        metrics: Any = None,
    ) -> None:
        self.codebook = codebook
        self.embedder = embedder
        self.framed_topic = framed_topic
        self.config = config or StageConfig()
        self.state_dir = state_dir
        self.metrics = metrics
        self.assigners = assigners or {w.id: make_assigner(w, embedder) for w in codebook.watches}
        self.anchors = {w.id: anchor_vectors(w, self._embedder_of(w.id)) for w in codebook.watches}
        self.memory = SegmentMemory(self.config.memory_segments)
        self.dedup = Deduplicator(max_entries=self.config.memory_segments)
        self._clusters_saved_at = time.monotonic()
        self.clusterers: dict[str, OnlineClusterer] = {}
        for w in codebook.watches:
            path = self._cluster_path(w.id)
            self.clusterers[w.id] = (
                OnlineClusterer.load(path, self.config.cluster) if path else OnlineClusterer(self.config.cluster)
            )
        if state_dir is not None:
            self.memory.load(state_dir / STATE_FILE)

    # --- run_stage entry point ----------------------------------------------------------------

    def __call__(self, batch: Sequence[Message]) -> StageOutput:
        """Decode, frame and encode one micro-batch; bad messages become failures."""
        decoded, failures = decode_batch(RawItem, batch)
        records, report, errors = self.frame_items([(ctx, item) for ctx, item in decoded])
        original = {(m.ctx.topic, m.ctx.partition, m.ctx.offset): m.value for m in batch}
        failures.extend(
            replace(f, raw=original.get((f.ctx.topic, f.ctx.partition, f.ctx.offset), f.raw)) for f in errors
        )
        if self.metrics is not None:
            self.metrics.observe(report)
        out = [Outgoing(self.framed_topic, r.key, contracts.encode(r)) for r in records]
        return StageOutput(produce=out, failures=failures)

    # --- the work -----------------------------------------------------------------------------

    def frame_items(
        self, entries: Sequence[tuple[MessageContext | None, RawItem]]
    ) -> tuple[list[FramedItem], BatchReport, list[Failure]]:
        """Frame items; returns records (batch order), counts, and per-item failures."""
        report = BatchReport()
        failures: list[Failure] = []
        pending: list[_Pending] = []
        for ctx, item in entries:
            try:
                pending.extend(self._prepare(ctx, item, report))
            except Exception as exc:  # one odd item must not stop the batch: errors are data
                log.exception("cannot segment item %s", item.item_id)
                if ctx is not None:
                    failures.append(Failure(ctx, PROCESSING_ERROR, f"{type(exc).__name__}: {exc}", contracts.encode(item)))
        self._decide(pending, report)
        records = [self._record(p) for p in pending]
        self.save()
        return records, report, failures

    def save(self, *, force: bool = False) -> None:
        """Persist segment memory (every batch) and clusters (no-op without a state dir).

        Clusters are written whenever an id was founded, merged or retired, so ids survive a
        crash and are never handed out twice; mere centroid updates at most every
        ``cluster_save_s`` (losing a few seconds of drift on a crash changes no id).
        """
        if self.state_dir is None:
            return
        self.memory.save(self.state_dir / STATE_FILE)
        due = force or time.monotonic() - self._clusters_saved_at >= self.config.cluster_save_s
        for wid, clusterer in self.clusterers.items():
            path = self._cluster_path(wid)
            if path is not None and (clusterer.ids_changed or (due and clusterer.changed)):
                clusterer.save(path)
        if due:
            self._clusters_saved_at = time.monotonic()

    def _cluster_path(self, watch_id: str) -> Path | None:
        return self.state_dir / "clusters" / watch_id if self.state_dir is not None else None

    def _prepare(self, ctx: MessageContext | None, item: RawItem, report: BatchReport) -> list[_Pending]:
        title = (item.title or "").strip()
        text = item.text.strip()
        if not title and not text:
            report.skip(EMPTY)
            return []
        ratio, letters = latin_ratio(f"{title}\n{text}")
        if letters >= self.config.min_letters_for_language and ratio < self.config.min_latin_ratio:
            report.skip(UNSUPPORTED_LANGUAGE)
            return []
        cap = self.config.max_item_chars
        watches = [w for w in self.codebook.watches if watch_matches(w, f"{title}\n{item.text[:cap]}")]
        if not watches:
            report.skip(NO_WATCH)
            return []
        segments = segment_item(item, max_chars=cap)[: self.config.max_segments]
        if not segments:
            report.skip(EMPTY)
            return []
        at = processed_at_of(ctx, item)
        return [
            _Pending(item, w, at, segments, [None] * len(segments), [None] * len(segments))
            for w in watches
        ]

    def _decide(self, pending: list[_Pending], report: BatchReport) -> None:
        """Fill every segment's decision: remembered, duplicate, or newly embedded and assigned."""
        # (watch, hash) -> (origin, [(pending, index)]) for segments first met in this batch
        new: dict[tuple[str, str], tuple[str, list[tuple[_Pending, int]]]] = {}
        near: dict[tuple[str, int], str | None] = {}
        for p in pending:
            for i, seg in enumerate(p.segments):
                me = f"{p.item.item_id}#{seg.index}"
                known = self.memory.get(p.watch.id, seg.text_hash)
                if known is not None:
                    p.decisions[i] = known
                    if known.origin != me:
                        p.duplicate_of[i] = known.origin
                        report.segment(SEG_DUPLICATE)
                    else:
                        report.segment(SEG_REPEAT)
                    continue
                key = (p.watch.id, seg.text_hash)
                if key not in new:
                    original = self._near_original(p, seg, near)
                    if original is not None and original != seg.text_hash:
                        known = self.memory.get(p.watch.id, original)
                        if known is not None:  # a near copy of an earlier batch's segment
                            p.decisions[i] = known
                            p.duplicate_of[i] = known.origin
                            self.memory.put(p.watch.id, seg.text_hash, known)
                            report.segment(SEG_DUPLICATE)
                            continue
                        if (p.watch.id, original) in new:  # a near copy within this batch
                            key = (p.watch.id, original)
                if key in new:
                    origin, users = new[key]
                    users.append((p, i))
                    if origin != me:
                        p.duplicate_of[i] = origin
                        report.segment(SEG_DUPLICATE)
                    continue
                new[key] = (me, [(p, i)])
        if not new:
            return
        texts: dict[str, str] = {}
        by_watch: dict[str, list[tuple[str, str]]] = {}
        for (wid, h), (origin, users) in new.items():
            p, i = users[0]
            texts.setdefault(h, p.segments[i].text)
            by_watch.setdefault(wid, []).append((h, origin))
        report.segment(SEG_EMBEDDED, len(new))
        vectors = self._embed(by_watch, texts, report)
        for wid, keys in by_watch.items():
            vecs = vectors[wid]
            assignments = list(self.assigners[wid].assign(vecs))
            novel = self._novel(wid, vecs, assignments)
            clusters = self._cluster(wid, keys, vecs, novel, texts, new)
            for (h, origin), a, cluster in zip(keys, assignments, clusters, strict=True):
                decision = decision_of(origin, a, cluster)
                self.memory.put(wid, h, decision)
                for p, i in new[(wid, h)][1]:
                    p.decisions[i] = decision
                    if p.segments[i].text_hash != h:
                        self.memory.put(wid, p.segments[i].text_hash, decision)

    def _near_original(self, p: _Pending, seg: Any, near: dict[tuple[str, int], str | None]) -> str | None:
        """text_hash of the original this segment copies (exactly or nearly), once per segment."""
        key = (p.item.item_id, seg.index)
        if key not in near:
            near[key] = self.dedup.check(seg.text_hash, seg.text, p.processed_at)
        return near[key]

    def _embedder_of(self, watch_id: str) -> Any:
        """The embedder whose vectors the watch's assigner expects (a trained one may differ)."""
        return getattr(self.assigners[watch_id], "embedder", None) or self.embedder

    def _embed(
        self, by_watch: dict[str, list[tuple[str, str]]], texts: dict[str, str], report: BatchReport
    ) -> dict[str, np.ndarray]:
        """Vectors per watch, with one embedding call per distinct embedder (normally one)."""
        groups: dict[int, tuple[Any, list[str]]] = {}
        for wid, keys in by_watch.items():
            emb = self._embedder_of(wid)
            hashes = groups.setdefault(id(emb), (emb, []))[1]
            hashes.extend(h for h, _ in keys)
        rows: dict[int, dict[str, np.ndarray]] = {}
        for gid, (emb, hashes) in groups.items():
            unique = list(dict.fromkeys(hashes))
            started = time.perf_counter()
            matrix = np.asarray(emb.embed([texts[h] for h in unique]), dtype=np.float32)
            report.embed_seconds += time.perf_counter() - started
            report.embedded_texts += len(unique)
            rows[gid] = dict(zip(unique, matrix, strict=True))
        out: dict[str, np.ndarray] = {}
        for wid, keys in by_watch.items():
            table = rows[id(self._embedder_of(wid))]
            out[wid] = np.stack([table[h] for h, _ in keys])
        return out

    def _novel(self, watch_id: str, vecs: np.ndarray, assignments: list[Any]) -> list[bool]:
        """Which segments are relevant but unframed, for emergent clustering.

        Unframed: the assigner gave no frame, or the segment is far (cosine below
        ``novelty_max``) from every frame's description and examples; a classifier head always
        picks *some* frame, so distance to the anchors is what says "none of these". Such a
        segment loses its codebook frame. Relevant: within ``cluster_min_score`` of an anchor.
        """
        closest = (vecs @ self.anchors[watch_id].T).max(axis=1)
        out = []
        for n, a in enumerate(assignments):
            near = float(closest[n])
            novel = (a.frame is None or near < self.config.novelty_max) and near >= self.config.cluster_min_score
            if novel and a.frame is not None:
                assignments[n] = unframed(a)
            out.append(novel)
        return out

    def _cluster(
        self, watch_id: str, keys: list[tuple[str, str]], vecs: np.ndarray, novel: list[bool],
        texts: dict[str, str], new: dict[tuple[str, str], tuple[str, list[tuple[_Pending, int]]]],
    ) -> list[str | None]:
        """Emergent clusters of relevant segments that no codebook frame claimed."""
        picks = [n for n, is_novel in enumerate(novel) if is_novel]
        out: list[str | None] = [None] * len(keys)
        if not picks:
            return out
        at = max(new[(watch_id, keys[n][0])][1][0][0].processed_at for n in picks)
        ids = self.clusterers[watch_id].partial_fit(vecs[picks], [texts[keys[n][0]] for n in picks], at)
        for n, cid in zip(picks, ids, strict=True):
            out[n] = emergent_id(cid)
        return out

    def _record(self, p: _Pending) -> FramedItem:
        segments: list[FramedSegment] = []
        for i, seg in enumerate(p.segments):
            d = p.decisions[i]
            assert d is not None
            segments.append(
                FramedSegment(
                    index=seg.index, text=seg.text, text_hash=seg.text_hash, frame=d.frame,
                    score=round(float(d.score), 6), margin=round(float(d.margin), 6), labels=d.labels,
                    top=tuple(FrameScore(f, round(float(s), 6)) for f, s in d.top),
                    nearest_examples=d.nearest_examples, duplicate_of=p.duplicate_of[i],
                    cluster=d.cluster, flags=tuple(seg.flags),
                )
            )
        level_fields = document_fields(  # frame and shares from the level that counts (codebook)
            getattr(self.assigners[p.watch.id], "document_head", None), self.embedder, p.watch, p.item,
            shares_of(segments), self.config.max_item_chars,
        )
        origins = {d.split("#", 1)[0] for d in p.duplicate_of if d is not None}
        whole_copy = bool(segments) and all(d is not None for d in p.duplicate_of) and len(origins) == 1
        item = p.item
        return FramedItem(
            key=contracts.framed_key(item.item_id, p.watch.id),
            item_id=item.item_id, watch_id=p.watch.id, source_id=item.source_id, kind=item.kind,
            published_at=item.published_at, processed_at=p.processed_at, **level_fields,
            segments=tuple(segments), codebook_version=self.codebook.version,
            model_id=getattr(self.assigners[p.watch.id], "model_ref", None) or self._embedder_of(p.watch.id).model_id,
            method=getattr(self.assigners[p.watch.id], "method", METHOD), url=item.url, title=item.title,
            outlet=item.outlet, duplicate_of=next(iter(origins)) if whole_copy else None,
        )


def shares_of(segments: Sequence[FramedSegment]) -> dict[str, float]:
    """Share of the item's framed segments per codebook frame, weighted by length (sums to 1)."""
    from framewatch.processing.framing.assign import frame_shares

    shares = frame_shares(segments, [float(max(1, len(s.text))) for s in segments])  # type: ignore[arg-type]
    return {f: round(v, 6) for f, v in shares.items()}


def anchor_vectors(watch: Watch, embedder: Any) -> np.ndarray:
    """Unit vectors of each frame's "label: description" and examples (what "framed" is near);
    a watch without frames is anchored on its title and match description (what it is about)."""
    texts = [f"{f.label}: {f.description}" for f in watch.frames]
    texts += [e for f in watch.frames for e in f.examples]
    if not texts:
        texts = [watch.title] + ([watch.match.description] if watch.match and watch.match.description else [])
    return np.asarray(embedder.embed(texts), dtype=np.float32)


def unframed(assignment: Any) -> Any:
    """The assignment with its frame (and labels, examples) dropped, scores kept."""
    return replace(assignment, frame=None, labels=(), nearest_examples=())


def decision_of(origin: str, assignment: Any, cluster: str | None) -> Decision:
    """A Decision from an assigner's Assignment (tolerant of its `top` element shape)."""
    top: list[tuple[str, float]] = []
    for entry in getattr(assignment, "top", ()) or ():
        if isinstance(entry, tuple | list):
            top.append((str(entry[0]), float(entry[1])))
        else:
            top.append((str(entry.frame), float(entry.score)))
    return Decision(
        origin=origin,
        frame=assignment.frame,
        score=round(float(assignment.score), 6),
        margin=round(float(assignment.margin), 6),
        labels=tuple(getattr(assignment, "labels", ()) or ()),
        top=tuple((f, round(s, 6)) for f, s in top),
        nearest_examples=tuple(getattr(assignment, "nearest_examples", ()) or ()),
        cluster=cluster,
    )


def make_assigner(watch: Watch, embedder: Any, artifact: Path | None = None) -> Any:
    """The strongest frame assigner of one watch: trained (with *artifact*), few- or zero-shot."""
    from framewatch.processing.framing.assign import build_assigner

    return build_assigner(watch, embedder, artifact_path=str(artifact) if artifact else None)
