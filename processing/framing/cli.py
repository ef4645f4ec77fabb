"""The processing consumer: raw items from Kafka through the frame stage to framed records.

``framewatch process --codebook CB`` runs :func:`run_processor` as a component
(:func:`~framewatch.service.run_component`: health endpoint, heartbeat, and a clean stop on
SIGTERM or SIGINT, the batch in hand produced and committed first). Delivery
is at-least-once; the stage is deterministic and keys are ``framed_key(item, watch)``, so a
re-delivered item yields the same record under the same key.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry

from framewatch.kafka_io import ensure_topics, make_consumer, make_producer, run_stage
from framewatch.metrics import PipelineMetrics, ProcessingMetrics
from framewatch.processing.framing.cluster import ClusterConfig
from framewatch.processing.framing.codebook import Codebook, load_codebook
from framewatch.processing.framing.stage import FrameStage, StageConfig
from framewatch.service import Component, load_settings, run_component, user_errors
from framewatch.settings import DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings

log = logging.getLogger(__name__)

COMPONENT = "processing"


def stage_config(settings: Settings) -> StageConfig:
    """The frame stage's knobs from settings."""
    return StageConfig(
        max_item_chars=settings.max_item_chars,
        max_segments=settings.max_segments_per_item,
        min_latin_ratio=settings.min_latin_ratio,
        cluster_min_score=settings.cluster_min_score,
        novelty_max=settings.cluster_novelty_max,
        memory_segments=settings.segment_memory,
        cluster=ClusterConfig(
            threshold=settings.cluster_threshold,
            merge_threshold=settings.cluster_merge_threshold,
            half_life_days=settings.cluster_half_life_days,
            max_clusters=settings.cluster_max,
            calibrate=settings.cluster_calibrate,
        ),
    )


def state_dir_of(settings: Settings) -> Path:
    """Where the processor keeps its segment memory and emergent clusters."""
    return settings.state_dir / "processing"


def build_stage(
    settings: Settings,
    codebook: Codebook,
    embedder: Any = None,
    *,
    registry: CollectorRegistry | None = None,
    artifact: Path | None = None,
) -> FrameStage:
    """The frame stage as the processor runs it (embedder from settings.model_name if not given)."""
    if embedder is None:
        from framewatch.processing.framing.embed import make_embedder

        embedder = make_embedder(settings.model_name, precision=settings.model_precision, backend=settings.model_backend,
                                 cache_dir=settings.model_cache_dir)
    metrics = ProcessingMetrics(registry) if registry is not None else None
    assigners = None
    if artifact is not None:
        from framewatch.processing.framing import stage as frame_stage

        assigners = {w.id: frame_stage.make_assigner(w, embedder, artifact) for w in codebook.watches}
    return FrameStage(
        codebook, embedder, framed_topic=settings.topic(FRAMED_ITEMS), config=stage_config(settings),
        state_dir=state_dir_of(settings), assigners=assigners, metrics=metrics,
    )


class ModelReloader:
    """The frame stage, re-reading its trained artifact whenever the artifact's files change (a
    promoted model written over it): the next micro-batch is framed by the new model, with no
    restart. A new artifact that does not load (half written, for other frames) is logged and the
    model in use stays; it is tried again when the files change again."""

    FILES = ("manifest.json", "head.npz", "examples.json", "document-head.npz")

    def __init__(self, stage: FrameStage, codebook: Codebook, artifact: Path) -> None:
        self.stage, self.codebook, self.artifact = stage, codebook, artifact
        self.stamp = self._stamp()
        self.reloads = 0

    def _stamp(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for name in self.FILES:
            try:
                st = (self.artifact / name).stat()
            except OSError:
                continue
            out.append((name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def check(self) -> bool:
        """Load the artifact again if its files changed; True when a new model is in use."""
        stamp = self._stamp()
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        from framewatch.processing.framing import stage as frame_stage

        try:
            assigners = {w.id: frame_stage.make_assigner(w, self.stage.embedder, self.artifact) for w in self.codebook.watches}
        except Exception as exc:  # a bad artifact must not stop the processor: keep the model in use
            log.warning("the artifact at %s changed but does not load (%s); keeping the model in use", self.artifact, exc)
            return False
        self.stage.assigners = assigners
        self.reloads += 1
        log.info("the artifact at %s changed: framing with the new model from this batch on", self.artifact)
        return True

    def __call__(self, batch: Any) -> Any:
        self.check()
        return self.stage(batch)


def run_processor(
    settings: Settings,
    codebook_path: str | Path,
    stop_event: threading.Event,
    embedder: Any = None,
    *,
    registry: CollectorRegistry | None = None,
    artifact: Path | None = None,
    ready: threading.Event | None = None,
    max_batches: int | None = None,
    idle_stop_s: float | None = None,
    serve_metrics: bool = False,
) -> int:
    """Frame raw items until *stop_event* is set; returns messages handled.

    Raises ConfigError (naming the field) for an invalid codebook before touching Kafka.
    """
    codebook = load_codebook(codebook_path)

    def body(component: Component) -> int:
        stage = build_stage(settings, codebook, embedder, registry=component.registry, artifact=artifact)
        component.closing("segment memory", lambda: stage.save(force=True))
        ensure_topics(settings, [settings.topic(t) for t in (RAW_ITEMS, FRAMED_ITEMS, DEAD_LETTERS)])
        consumer = make_consumer(settings, settings.group_id(COMPONENT), [settings.topic(RAW_ITEMS)])
        component.closing("consumer", consumer.close)
        producer = make_producer(settings)
        component.closing("producer", lambda: producer.close(timeout=10))
        component.ready.set()
        if ready is not None:
            ready.set()
        log.info(
            "processing %s with codebook %s (version %s), model %s",
            settings.topic(RAW_ITEMS), codebook.path, codebook.version, stage.embedder.model_id,
        )
        # with a trained artifact, a promoted model written over it is picked up between batches
        framer = ModelReloader(stage, codebook, artifact) if artifact is not None else stage
        return run_stage(
            consumer=consumer, producer=producer, stage=framer, settings=settings,
            metrics=PipelineMetrics(component.registry, COMPONENT), stop=component.stop,
            max_batches=max_batches, idle_stop_s=idle_stop_s, heartbeat=component.heartbeat.beat,
        )

    return run_component(
        COMPONENT, settings, body, stop=stop_event, registry=registry, serve_health=serve_metrics,
    )


@click.command("process")
@click.option("--codebook", "codebook_path", required=True, type=click.Path(dir_okay=False), help="Codebook YAML.")
@click.option("--artifact", type=click.Path(file_okay=False, path_type=Path), default=None, help="Trained assigner artifact folder (from `framewatch codebook train`).")
def process(codebook_path: str, artifact: Path | None) -> None:
    """Frame raw items from Kafka into framed records (runs until SIGTERM/SIGINT)."""
    settings = load_settings()
    with user_errors():
        load_codebook(codebook_path)  # fail fast, before loading the model
        run_processor(settings, codebook_path, threading.Event(), artifact=artifact, serve_metrics=True)
