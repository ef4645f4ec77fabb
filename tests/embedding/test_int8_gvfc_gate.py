"""The int8 ONNX model is used only when its GVFC figures stay within 0.01 of float32's.

Runs the project's own GVFC evaluation (processing/analyst/evaluate.py) on the ONNX float32 and
int8 exports: zero-shot (self-trained prototypes) and few-shot (16 shots a frame, prototypes,
no fine-tuning: the fine-tuned row takes minutes and trains torch weights, not the export).
Records the verdict beside the export and checks that ``auto`` then offers int8 exactly when it
passed. Needs ../shared (skips without it) and the real model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from framewatch.processing.embedding import choose
from framewatch.processing.embedding.export import ExportedModel
from framewatch.processing.embedding.onnx_embedder import OnnxEmbedder
from framewatch.processing.framing.embed import CachingEmbedder, FakeEmbedder


def gvfc_figures(embedder: object, data: Path) -> dict[str, float]:
    """Macro-F1 of zero-shot and few-shot (frozen) on GVFC with *embedder*."""
    from framewatch.processing.analyst.evaluate import EvalOptions, evaluate, load_labelled
    from framewatch.processing.framing.codebook import load_codebook
    from framewatch.processing.framing.train import TrainConfig

    watch = load_codebook(data / "codebook.yaml").watches[0]
    examples = load_labelled(data / "gvfc_headlines.jsonl")
    frozen = TrainConfig(finetune=False)
    return {
        mode.replace("-", "_"): float(evaluate(examples, watch, embedder, EvalOptions(mode=mode, shots=16, train=frozen))["macro_f1"])  # type: ignore[arg-type]
        for mode in ("zero-shot", "few-shot")
    }


@pytest.mark.model
@pytest.mark.timeout(600)
def test_int8_is_used_only_within_001_of_float32_on_gvfc(exported: ExportedModel, shared_dir: Path) -> None:
    data = shared_dir / "data" / "gvfc"
    if not (data / "gvfc_headlines.jsonl").exists():
        pytest.skip(f"no GVFC data at {data}")
    float32 = gvfc_figures(CachingEmbedder(OnnxEmbedder(exported, threads=1)), data)
    int8 = gvfc_figures(CachingEmbedder(OnnxEmbedder(exported, int8=True, threads=1)), data)
    print(f"GVFC macro-F1 float32 {float32} int8 {int8}")
    assert float32["zero_shot"] >= 0.45 and float32["few_shot"] >= 0.45, float32  # the evaluation really ran
    passed = choose.record_int8_verdict(exported, float32, int8)
    assert passed == all(float32[k] - int8[k] <= 0.01 for k in float32)
    verdict = choose.int8_verdict(exported)
    assert verdict is not None and verdict["passed"] == passed and verdict["int8"] == int8
    _, picked = choose.choose("auto", "auto", "float32", FakeEmbedder, lambda _: FakeEmbedder(), lambda: exported)
    assert ("onnx-int8" in picked.seconds) == passed, picked
