"""analyst (``framewatch eval``, ``analyze``, ``codebook``): offline tools, no Kafka.

In: labelled JSONL, a feed file or URL, a codebook, the processor's cluster state. Out: figures
(``evaluate``), framed JSON lines (``analyze``), a trained artifact, a codebook with a promoted
frame (``promote``). It uses ``framing`` and ingest's parsing; no program uses it.
"""
