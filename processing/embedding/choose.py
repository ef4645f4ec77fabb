"""Pick the embedding backend: torch (sentence-transformers) or the ONNX export, float32 or int8.

``torch`` and ``onnx`` are taken as asked (onnx falls back to torch, with the reason logged,
when onnxruntime is missing or the export fails). ``auto`` times each candidate that keeps
quality on a short probe at start-up and keeps the fastest: torch at its precision, ONNX
float32 (the same vectors as torch float32 to 1e-4, checked on the probe), and ONNX int8 only
where a GVFC verdict says its figures stay within 0.01 of float32 (see :func:`record_int8_verdict`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framewatch.errors import ConfigError
from framewatch.processing.embedding.export import ExportedModel, ExportError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
INT8_TOLERANCE = 0.01  # macro-F1 points int8 may lose on GVFC against float32
PARITY_TOLERANCE = 1e-4
VERDICT_FILE = "int8-gvfc.json"
_SUBJECTS = ("The new scoring system", "A city council", "Critics of the policy", "The ministry", "Local residents")
_CLAIMS = ("punishes people for small offences without any way to appeal",
           "protects consumers from firms that cheat their customers",
           "was described at a press conference on Tuesday",
           "raises questions about data privacy, who can see the records and for how long they are kept, "
           "according to several researchers who interviewed dozens of business owners for a study")
PROBE_TEXTS = tuple(f"{s} {c}." for s in _SUBJECTS for c in _CLAIMS)  # 20 texts, 10 to 45 tokens


@dataclass(frozen=True, slots=True)
class Choice:
    """The backend kept, why, and the probe's seconds per candidate."""

    backend: str
    reason: str
    seconds: dict[str, float] = field(default_factory=dict)


def int8_verdict(model: ExportedModel) -> dict[str, Any] | None:
    """The recorded GVFC comparison of int8 against float32 for this export, if any."""
    path = model.folder / VERDICT_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def int8_keeps_quality(float32: dict[str, float], int8: dict[str, float], tolerance: float = INT8_TOLERANCE) -> bool:
    """True when every figure int8 has (macro-F1 per mode) is at most *tolerance* below float32's."""
    shared = set(float32) & set(int8)
    return bool(shared) and all(float32[k] - int8[k] <= tolerance for k in shared)


def record_int8_verdict(model: ExportedModel, float32: dict[str, float], int8: dict[str, float]) -> bool:
    """Store the GVFC figures of both variants beside the export; returns whether int8 passes."""
    passed = int8_keeps_quality(float32, int8)
    model.folder.mkdir(parents=True, exist_ok=True)
    verdict = {"float32": float32, "int8": int8, "tolerance": INT8_TOLERANCE, "passed": passed}
    (model.folder / VERDICT_FILE).write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n")
    return passed


def _probe_seconds(embedder: Any, texts: Sequence[str], rounds: int = 2) -> float:
    embedder.embed(texts[:4])  # warm-up: first-call allocations
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.embed(texts)
        best = min(best, time.perf_counter() - started)
    return best


def choose(
    requested: str,
    precision: str,
    resolved: str,
    torch_factory: Callable[[], Any],
    onnx_factory: Callable[[bool], Any],
    model: Callable[[], ExportedModel],
    probe_texts: Sequence[str] = PROBE_TEXTS,
) -> tuple[Any, Choice]:
    """Build the embedder *requested* (``auto|torch|onnx``) for *precision* as asked (auto,
    float32, bfloat16, int8) and as *resolved* for torch on this CPU; returns it with the choice,
    which is also logged. int8 competes only where asked, or under ``auto`` with a passing verdict."""
    if requested not in BACKENDS:
        raise ConfigError(f"model backend {requested!r}: expected one of {', '.join(BACKENDS)}")
    if requested == "torch":
        return _done(torch_factory(), Choice(f"torch-{resolved}", "asked for torch"))
    if requested == "onnx":
        try:
            int8 = precision == "int8"
            return _done(onnx_factory(int8), Choice("onnx-int8" if int8 else "onnx", f"asked for onnx ({precision})"))
        except (ExportError, OSError) as exc:
            return _done(torch_factory(), Choice(f"torch-{resolved}", f"onnx unavailable, torch instead: {exc}"))
    return _auto(precision, resolved, torch_factory, onnx_factory, model, probe_texts)


def _auto(
    precision: str, resolved: str, torch_factory: Callable[[], Any], onnx_factory: Callable[[bool], Any],
    model: Callable[[], ExportedModel], probe_texts: Sequence[str],
) -> tuple[Any, Choice]:
    reference = torch_factory()
    candidates: dict[str, Any] = {f"torch-{resolved}": reference}
    notes: list[str] = []
    try:
        if precision == "int8":  # int8 was asked: the int8 variants compete
            candidates["onnx-int8"] = onnx_factory(True)
        else:
            onnx = onnx_factory(False)
            if resolved == "float32":  # the same vectors, or it does not compete
                gap = float(np.abs(onnx.embed(probe_texts) - reference.embed(probe_texts)).max())
                if gap > PARITY_TOLERANCE:
                    raise ExportError(f"onnx vectors differ from torch's by {gap:.2g} (> {PARITY_TOLERANCE})")
            candidates["onnx"] = onnx
            verdict = int8_verdict(model())
            if precision == "auto" and verdict and verdict.get("passed"):
                candidates["onnx-int8"] = onnx_factory(True)
            else:
                notes.append("int8 not considered: " + (
                    f"precision {precision} asked" if precision != "auto" else
                    "no GVFC verdict recorded" if not verdict else "GVFC verdict: int8 loses > 0.01 macro-F1"))
    except (ExportError, OSError) as exc:
        notes.append(f"onnx unavailable: {exc}")
    seconds = {name: round(_probe_seconds(e, probe_texts), 4) for name, e in candidates.items()}
    best = min(seconds, key=seconds.__getitem__)
    timing = ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in sorted(seconds.items(), key=lambda kv: kv[1]))
    reason = f"fastest on {len(probe_texts)} probe texts ({timing})" if len(candidates) > 1 else "only candidate"
    return _done(candidates[best], Choice(best, "; ".join([reason, *notes]), seconds))


def _done(embedder: Any, choice: Choice) -> tuple[Any, Choice]:
    log.info("embedding backend %s: %s", choice.backend, choice.reason)
    return embedder, choice
