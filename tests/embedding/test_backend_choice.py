"""Backend choice: torch and onnx as asked, auto among candidates that keep quality, torch when the export fails."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from framewatch.errors import ConfigError
from framewatch.processing.embedding import choose, export
from framewatch.processing.embedding.export import ExportedModel, ExportError
from framewatch.processing.embedding.onnx_embedder import OnnxEmbedder
from framewatch.processing.framing.embed import FakeEmbedder
from tests.embedding.conftest import model_source_without_normalize


class Shifted(FakeEmbedder):
    """FakeEmbedder whose vectors are nudged (an ONNX model that drifted from torch)."""

    def embed(self, texts):  # type: ignore[no-untyped-def]
        vectors = super().embed(texts)
        return vectors + np.float32(0.01)


def bundled(tmp_path: Path) -> ExportedModel:
    return export.locate(cache_dir=tmp_path)


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model backend 'tpu'"):
        choose.choose("tpu", "auto", "float32", FakeEmbedder, lambda _: FakeEmbedder(), lambda: bundled(tmp_path))


def test_torch_as_asked(tmp_path: Path) -> None:
    built: list[bool] = []
    embedder, picked = choose.choose("torch", "auto", "float32", FakeEmbedder,
                                     lambda int8: built.append(int8), lambda: bundled(tmp_path))
    assert isinstance(embedder, FakeEmbedder) and picked.backend == "torch-float32" and built == []


def test_a_broken_export_falls_back_to_torch_with_the_reason_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = bundled(tmp_path)
    model.folder.mkdir(parents=True)
    model.float32.write_bytes(b"not an onnx graph")  # a truncated or corrupt export in the cache
    with caplog.at_level(logging.INFO, logger="framewatch.processing.embedding.choose"):
        embedder, picked = choose.choose("onnx", "auto", "float32", FakeEmbedder,
                                         lambda int8: OnnxEmbedder(model, int8=int8, threads=1), lambda: model)
    assert isinstance(embedder, FakeEmbedder)
    assert picked.backend == "torch-float32"
    assert "onnx unavailable" in picked.reason and "cannot load" in picked.reason
    assert any("onnx unavailable" in r.getMessage() for r in caplog.records)


def test_an_export_the_pipeline_refuses_falls_back(tmp_path: Path) -> None:
    source = model_source_without_normalize(tmp_path, export.locate(cache_dir=tmp_path).source)
    model = export.locate(str(source), cache_dir=tmp_path / "cache")

    def onnx(int8: bool) -> OnnxEmbedder:
        export.export_float32(model)
        return OnnxEmbedder(model, int8=int8)

    for requested in ("onnx", "auto"):
        embedder, picked = choose.choose(requested, "auto", "float32", FakeEmbedder, onnx, lambda: model)
        assert isinstance(embedder, FakeEmbedder), requested
        assert "no Normalize module" in picked.reason
    assert not model.float32.exists()


def test_auto_drops_an_onnx_model_whose_vectors_drift(tmp_path: Path) -> None:
    _, picked = choose.choose("auto", "float32", "float32", FakeEmbedder, lambda _: Shifted(), lambda: bundled(tmp_path))
    assert picked.backend == "torch-float32"
    assert "differ from torch's" in picked.reason and set(picked.seconds) == {"torch-float32"}


def test_auto_times_every_candidate_and_int8_only_with_a_passing_verdict(tmp_path: Path) -> None:
    model = bundled(tmp_path)
    asked: list[bool] = []

    def onnx(int8: bool) -> FakeEmbedder:
        asked.append(int8)
        return FakeEmbedder()

    _, picked = choose.choose("auto", "auto", "float32", FakeEmbedder, onnx, lambda: model)
    assert set(picked.seconds) == {"torch-float32", "onnx"} and asked == [False]
    assert "no GVFC verdict" in picked.reason
    assert picked.backend in picked.seconds and picked.seconds[picked.backend] == min(picked.seconds.values())

    assert not choose.record_int8_verdict(model, {"zero_shot": 0.50, "few_shot": 0.65}, {"zero_shot": 0.48, "few_shot": 0.65})
    _, picked = choose.choose("auto", "auto", "float32", FakeEmbedder, onnx, lambda: model)
    assert "onnx-int8" not in picked.seconds and "loses > 0.01" in picked.reason

    assert choose.record_int8_verdict(model, {"zero_shot": 0.50, "few_shot": 0.65}, {"zero_shot": 0.495, "few_shot": 0.66})
    _, picked = choose.choose("auto", "auto", "float32", FakeEmbedder, onnx, lambda: model)
    assert set(picked.seconds) == {"torch-float32", "onnx", "onnx-int8"}
    # an explicit precision keeps int8 out of auto's choice
    _, picked = choose.choose("auto", "float32", "float32", FakeEmbedder, onnx, lambda: model)
    assert "onnx-int8" not in picked.seconds


def test_the_int8_gate() -> None:
    assert choose.int8_keeps_quality({"a": 0.5}, {"a": 0.4901})
    assert not choose.int8_keeps_quality({"a": 0.5}, {"a": 0.489})
    assert choose.int8_keeps_quality({"a": 0.5, "b": 0.6}, {"a": 0.52, "b": 0.6})
    assert not choose.int8_keeps_quality({"a": 0.5}, {"b": 0.5})  # nothing compared: no pass


def test_export_error_is_a_framewatch_error() -> None:
    from framewatch.errors import FramewatchError

    assert issubclass(ExportError, FramewatchError)
