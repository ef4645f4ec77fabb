"""The ONNX export gives torch's vectors to 1e-4, with any batch and sequence length, and is cached by version."""

from __future__ import annotations

import os

import numpy as np
import pytest

from framewatch.processing.embedding import export
from framewatch.processing.embedding.export import ExportedModel
from framewatch.processing.embedding.onnx_embedder import TOKEN_BUDGET, OnnxEmbedder, _batches

TEXTS = [
    "China's social credit system is a digital panopticon.",
    "",
    "Ünïcode, émoji 🙂 and 中文 text.",
    "short",
    # longer than max_seq_length (256 tokens): truncated the same way by both
    " ".join(["Officials described the pilots at a press conference on Tuesday."] * 40),
    "It rewards trustworthy citizens with discounts and encourages good conduct.",
]


@pytest.mark.model
def test_onnx_vectors_equal_torch_float32(exported: ExportedModel, torch_model: object) -> None:
    embedder = OnnxEmbedder(exported, threads=1)
    reference = torch_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)  # type: ignore[attr-defined]
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert float(np.abs(vectors - reference).max()) <= 1e-4
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # one text alone (batch 1, its own length) gives the row it had in the batch
    for i in (0, 4):
        assert float(np.abs(embedder.embed([TEXTS[i]])[0] - vectors[i]).max()) <= 1e-5
    assert embedder.token_lengths([TEXTS[4]]) == [exported.max_seq_length]


@pytest.mark.model
def test_int8_export_is_smaller_and_close(exported: ExportedModel) -> None:
    assert exported.int8.stat().st_size < 0.8 * exported.float32.stat().st_size
    f32 = OnnxEmbedder(exported, threads=1).embed(TEXTS)
    int8 = OnnxEmbedder(exported, int8=True, threads=1)
    assert int8.model_id.endswith("@int8")
    cosines = (int8.embed(TEXTS) * f32).sum(axis=1)
    assert float(cosines.min()) > 0.9, cosines  # close, not equal: the GVFC gate decides its use


@pytest.mark.model
def test_export_is_reused_and_keyed_by_versions(exported: ExportedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    again = export.locate(cache_dir=exported.folder.parent)
    assert again.folder == exported.folder
    stamp = os.stat(exported.float32).st_mtime_ns
    export.export_float32(again)
    assert os.stat(exported.float32).st_mtime_ns == stamp  # not exported twice
    real = export._version
    monkeypatch.setattr(export, "_version", lambda p: "9.9" if p == "torch" else real(p))
    assert export.locate(cache_dir=exported.folder.parent).folder != exported.folder


def test_batches_keep_under_the_token_budget() -> None:
    lengths = [3, 5, 300, 7, 64, 64, 128, 9] * 40
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = _batches(order, lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= max(TOKEN_BUDGET, max(lengths[i] for i in batch))
    assert len(batches) < len(lengths) / 4  # short texts share batches


def test_hub_ids_are_not_exported(tmp_path: object) -> None:
    with pytest.raises(export.ExportError, match="no local folder"):
        export.locate("sentence-transformers/some-hub-model", cache_dir=tmp_path)  # type: ignore[arg-type]
