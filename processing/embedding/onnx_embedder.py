"""The exported sentence encoder on onnxruntime: same tokenizer, same unit vectors as torch.

Length-aware batching: texts are tokenized once (truncated at the model's max_seq_length, as
sentence-transformers does), sorted by token count, and cut into batches under a token budget,
each padded only to its own longest text; short segments never pay for a long one's padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framewatch.processing.embedding.export import ExportedModel, ExportError

TOKEN_BUDGET = 8192  # padded tokens per forward pass: big batches of short texts, small of long ones
MAX_BATCH = 128


def default_threads() -> int:
    """The process's CPU thread budget as torch sees it (it honours OMP_NUM_THREADS and
    ``torch.set_num_threads``), so both backends obey one knob; 0 = onnxruntime's default."""
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return 0


class OnnxEmbedder:
    """An exported model (float32 or int8) as an Embedder."""

    def __init__(self, model: ExportedModel, *, int8: bool = False, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ExportError(f"onnxruntime or tokenizers is not installed: {exc}") from exc
        path: Path = model.int8 if int8 else model.float32
        if not path.exists():
            raise ExportError(f"no exported model at {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads > 0 else default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types (InvalidGraph, Fail, ...)
            raise ExportError(f"onnxruntime cannot load {path}: {exc}") from exc
        self.tokenizer = Tokenizer.from_file(str(model.source / "tokenizer.json"))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128: we pad per batch instead
        self.tokenizer.enable_truncation(max_length=model.max_seq_length)
        self.max_seq_length = model.max_seq_length
        self.threads = options.intra_op_num_threads
        self.int8 = int8
        self.backend = "onnx-int8" if int8 else "onnx"
        self.model_id = f"{model.model_name}@int8" if int8 else model.model_name
        self.forward_passes = 0
        self.padded_tokens = 0
        self.dim = int(self._run([self.tokenizer.encode("").ids]).shape[1])  # also proves the graph runs
        self.forward_passes = 0
        self.padded_tokens = 0

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text after truncation (special tokens included)."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit rows in the caller's order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for batch in _batches(order, [len(x) for x in ids]):
            out[batch] = self._run([ids[i] for i in batch])
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        self.forward_passes += 1
        self.padded_tokens += input_ids.size
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)


def _batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Cut length-sorted indices into batches whose padded size stays under TOKEN_BUDGET."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted ascending, so this text is the batch's longest: the padded size is len * count
        if current and (lengths[i] * (len(current) + 1) > TOKEN_BUDGET or len(current) >= MAX_BATCH):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
