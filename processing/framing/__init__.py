"""framing (``framewatch process``): raw items in, one framed item per (item, watch) out.

In: ``raw-items`` (``RawItem``). Out: ``framed-items`` (``FramedItem``), ``dead-letters``.
``stage`` is the pure micro-batch stage; ``segment`` cuts items into passages, ``dedup`` and
``decisions`` skip what was seen, ``embed`` makes vectors, ``assign`` picks frames from the
``codebook`` (``train`` fits trained heads), ``cluster`` groups unframed passages into emergent
framings; ``cli`` runs the stage as a component.
"""
