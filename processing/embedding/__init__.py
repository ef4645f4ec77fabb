"""Sentence embeddings behind one interface: torch (sentence-transformers) or an exported ONNX model, float32 or int8."""
