"""Operators' tools for the ``dead-letters`` topic: list, show and replay what components refused.

``framewatch dead-letters list|show|replay`` (``cli.py``) reads the topic without a group and
commits nothing (``reader.py``), selects with the same filters everywhere (``selection.py``),
prints strangers' bytes only escaped (``render.py``), and replays each dead letter at most once
per deployment, remembered in the compacted ``dead-letter-replays`` topic (``replay.py``).
"""

from __future__ import annotations

# Logical topic of replay markers (claims and completions), keyed by dead-letter id; compacted.
DEAD_LETTER_REPLAYS = "dead-letter-replays"
# Header on every replayed record naming the dead letter it replays: "<dead-letters topic>:<id>".
REPLAY_HEADER = "framewatch-replay-of"
REPLAY_RUN_HEADER = "framewatch-replay-run"
