"""The Models page: a candidate trained on the analysts' labels, cross-validated beside the model
in use, and its promotion into the artifact folder the processor reads (the processor frames its
next micro-batch with it, no restart).

Training runs in one background thread per serve process; a second request while it runs is
refused with a message. The page refreshes itself while it runs (a meta refresh, no script).
The labels are read through the API's own export route, in-process, with the login's token.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from framewatch.errors import ConfigError
from framewatch.processing.analyst.compare import (
    Comparison,
    artifact_model_id,
    compare_models,
    promote_artifact,
    train_candidate,
)
from framewatch.processing.framing.assign import FrameAssigner, build_assigner
from framewatch.processing.framing.codebook import Codebook, load_codebook
from framewatch.processing.framing.embed import Embedder, make_embedder
from framewatch.processing.framing.train import MANIFEST, LabelledText, read_manifest
from framewatch.processing.workbench.forms import form_of, problem, relay
from framewatch.processing.workbench.render import page
from framewatch.processing.workbench.session import Sessions
from framewatch.settings import Settings

if TYPE_CHECKING:
    from framewatch.processing.serve.app import ServeContext

PROMOTIONS = "promotions.jsonl"  # in the artifact folder: one line per promotion, newest last
log = logging.getLogger(__name__)

REFRESH_S = 3


@dataclass(frozen=True, slots=True)
class Job:
    """One training run: where it is, and what it found."""

    watch: str
    by: str
    started_at: datetime
    stage: str
    done: int = 0
    total: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    comparison: Comparison | None = None

    @property
    def running(self) -> bool:
        """Still training."""
        return self.finished_at is None


@dataclass(frozen=True, slots=True)
class Promotion:
    """Who promoted which model, when, where to."""

    model_id: str
    watch: str
    by: str
    at: datetime
    path: Path


class ModelDesk:
    """The serve process's one training job, its candidate and the last promotion."""

    def __init__(self, settings: Settings, now: Callable[[], datetime]) -> None:
        self.settings, self.now = settings, now
        self.codebook_path = settings.serve_codebook_path
        self.artifact_path = settings.serve_artifact_path
        self.candidate_dir = settings.state_dir / "serve" / "candidate"
        self.job: Job | None = None
        self.promotion: Promotion | None = self.last_promotion()
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None

    def codebook(self) -> Codebook | None:
        """The codebook the processor runs with, when serve is told where it is."""
        return load_codebook(self.codebook_path) if self.codebook_path is not None else None

    def artifact_problem(self) -> str | None:
        """Why a promotion cannot be written now, or None."""
        path = self.artifact_path
        if path is None:
            return ("No model path is configured: start `framewatch serve` with FRAMEWATCH_SERVE_ARTIFACT_PATH set to "
                    "the artifact folder the processor runs with (`framewatch process --artifact DIR`).")
        target = path if path.exists() else path.parent
        if not target.is_dir() or not os.access(target, os.W_OK):
            return f"The model path {path} (FRAMEWATCH_SERVE_ARTIFACT_PATH) is not a folder this server can write."
        return None

    def last_promotion(self) -> Promotion | None:
        """The newest entry of the artifact folder's promotion log (it outlives this process)."""
        log_path = None if self.artifact_path is None else self.artifact_path / PROMOTIONS
        if log_path is None or not log_path.exists():
            return None
        try:
            last = json.loads(log_path.read_text(encoding="utf-8").strip().splitlines()[-1])
            return Promotion(last["model_id"], last["watch"], last["by"], datetime.fromisoformat(last["at"]),
                             self.artifact_path)  # type: ignore[arg-type]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("promotion log %s unreadable (%s): the page shows no last promotion", log_path, exc)
            return None

    def live_manifest(self) -> dict[str, Any] | None:
        """The manifest of the artifact in use, if there is one that reads."""
        if self.artifact_path is None or not (self.artifact_path / MANIFEST).exists():
            return None
        try:
            return read_manifest(self.artifact_path)
        except ConfigError:
            return None

    def start(self, watch: str, examples: list[LabelledText], by: str) -> str | None:
        """Start training for *watch* in the background; a message when one runs already."""
        with self._lock:
            if self.job is not None and self.job.running:
                return (f"A candidate for {self.job.watch} is being trained (started by {self.job.by}): "
                        "wait until it finishes, then train again.")
            self.job = Job(watch, by, self.now(), "starting")
        threading.Thread(target=self._run, args=(watch, examples), name="framewatch-train", daemon=True).start()
        return None

    def _update(self, **changes: Any) -> None:
        with self._lock:
            assert self.job is not None
            self.job = replace(self.job, **changes)

    def _embedder_of(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = make_embedder(s.model_name, precision=s.model_precision, backend=s.model_backend,
                                           cache_dir=s.model_cache_dir)
        return self._embedder

    def current_assigner(self, codebook: Codebook, watch_id: str, embedder: Embedder) -> FrameAssigner:
        """The model the processor frames *watch_id* with: the artifact in use, else the codebook's."""
        watch = codebook.watch(watch_id)
        if self.live_manifest() is None:
            return build_assigner(watch, embedder)
        try:
            return build_assigner(watch, embedder, artifact_path=str(self.artifact_path))
        except ConfigError as exc:
            raise ConfigError(f"the model in use at {self.artifact_path} does not load for watch {watch_id!r}: {exc}") from exc

    def _run(self, watch_id: str, examples: list[LabelledText]) -> None:
        try:
            codebook = self.codebook()
            if codebook is None:
                raise ConfigError("no codebook configured (FRAMEWATCH_SERVE_CODEBOOK_PATH)")
            watch = codebook.watch(watch_id)
            self._update(stage="loading the model")
            embedder = self._embedder_of()
            current = self.current_assigner(codebook, watch_id, embedder)
            comparison = compare_models(examples, watch, embedder, current,
                                        progress=lambda stage, done, total: self._update(stage=stage, done=done, total=total))
            self._update(stage="training the candidate on every label", done=comparison.folds)
            model_id = train_candidate(examples, watch, embedder, self.candidate_dir, codebook_version=codebook.version)
            comparison = replace(comparison, candidate=replace(comparison.candidate, model_id=model_id))
            self._update(stage="done", comparison=comparison, finished_at=self.now())
            log.info("candidate %s for %s: macro-F1 %.3f against %.3f for the model in use (%s), %d labels",
                     model_id, watch_id, comparison.candidate.macro_f1, comparison.current.macro_f1,
                     comparison.current.model_id, comparison.labels)
        except Exception as exc:  # the page reports it; serve keeps running
            if not isinstance(exc, ConfigError):
                log.exception("training a candidate for %s failed", watch_id)
            self._update(stage="failed", error=str(exc)[:500], finished_at=self.now())

    def promote(self, candidate_id: str, by: str, confirm: bool) -> str:
        """Write the finished candidate over the artifact in use; ConfigError says why not."""
        with self._lock:  # no new training replaces the candidate while it is copied
            job = self.job
            if job is None or job.running or job.comparison is None:
                raise ConfigError("There is no finished candidate to promote: train one first.")
            problem = self.artifact_problem()
            if problem is not None:
                raise ConfigError(problem)
            found = artifact_model_id(read_manifest(self.candidate_dir))
            if candidate_id != job.comparison.candidate.model_id or found != candidate_id:
                raise ConfigError("The candidate changed since this page was shown: look at its figures again.")
            c = job.comparison
            if c.candidate.macro_f1 < c.current.macro_f1 and not confirm:
                raise ConfigError(f"The candidate's macro-F1 ({c.candidate.macro_f1:.3f}) is below the model in use's "
                                  f"({c.current.macro_f1:.3f}): tick \"promote anyway\" to promote it.")
            assert self.artifact_path is not None
            promote_artifact(self.candidate_dir, self.artifact_path)
            self.promotion = Promotion(candidate_id, job.watch, by, self.now(), self.artifact_path)
            record = {"model_id": candidate_id, "watch": job.watch, "by": by, "at": self.promotion.at.isoformat(),
                      "replaced": c.current.model_id, "macro_f1": c.candidate.macro_f1,
                      "replaced_macro_f1": c.current.macro_f1, "labels": c.labels}
            with (self.artifact_path / PROMOTIONS).open("a", encoding="utf-8") as out:  # who changed the model, kept
                out.write(json.dumps(record) + "\n")
        log.info("model %s promoted by %s into %s (macro-F1 %.3f, the model replaced %.3f)",
                 candidate_id, by, self.artifact_path, c.candidate.macro_f1, c.current.macro_f1)
        return f"{candidate_id} is promoted: the processor frames with it from its next micro-batch."


def parse_export(body: str) -> list[LabelledText]:
    """The labels export (one JSON object a line) as labelled texts."""
    out = []
    for line in body.splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(LabelledText(str(row["id"]), str(row["text"]), tuple(str(x) for x in row.get("labels") or ())))
    return out


def add_model_routes(router: APIRouter, ctx: ServeContext, sessions: Sessions) -> ModelDesk:
    """GET /ui/models, POST /ui/models/train and /ui/models/promote."""
    desk = ModelDesk(ctx.settings, lambda: ctx.now())  # ctx.now may be replaced after start-up (tests)

    @router.get("/ui/models", response_class=HTMLResponse, include_in_schema=False)
    def models(request: Request, notice: str | None = None, error: str | None = None) -> HTMLResponse:
        who = sessions.who(request)
        codebook, codebook_error = None, None
        try:
            codebook = desk.codebook()
        except ConfigError as exc:
            codebook_error = str(exc)
        job, live = desk.job, desk.live_manifest()
        return page(request, "models.html", who, sessions.csrf(request), title="Models", desk=desk, job=job,
                    comparison=job.comparison if job else None, refresh=REFRESH_S if job and job.running else None,
                    watches=[w.id for w in codebook.watches] if codebook else [], codebook_error=codebook_error,
                    artifact_problem=desk.artifact_problem(), live=live,
                    live_id=artifact_model_id(live) if live else None, notice=notice, error=error)

    def back(**message: str) -> Response:
        return RedirectResponse(f"/ui/models?{urlencode(message)}", status_code=303)

    @router.post("/ui/models/train", include_in_schema=False)
    async def train(request: Request) -> Response:
        who = sessions.who(request, "analyst")
        form = await form_of(request)
        sessions.check_csrf(request, form.get("csrf", ""))
        try:
            codebook = desk.codebook()
            if codebook is None:
                raise ConfigError("No codebook is configured: set FRAMEWATCH_SERVE_CODEBOOK_PATH to the processor's codebook.")
            watch = form.get("watch") or codebook.watches[0].id
            codebook.watch(watch)
        except ConfigError as exc:
            return back(error=str(exc))
        resp = await relay(request, sessions, "GET", f"/labels/export?{urlencode({'watch': watch})}", None)
        if resp.status_code != 200:
            return back(error=f"The labels cannot be read: {problem(resp)}")
        busy = desk.start(watch, parse_export(resp.text), who.name)
        return back(error=busy) if busy else back(notice=f"Training a candidate for {watch}.")

    @router.post("/ui/models/promote", include_in_schema=False)
    async def promote(request: Request) -> Response:
        who = sessions.who(request, "analyst")
        form = await form_of(request)
        sessions.check_csrf(request, form.get("csrf", ""))
        try:
            done = desk.promote(form.get("candidate", ""), who.name, form.get("confirm") == "yes")
        except (ConfigError, OSError) as exc:
            return back(error=str(exc))
        return back(notice=done)

    return desk
