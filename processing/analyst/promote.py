"""Promoting an emergent cluster into a named codebook frame (``framewatch codebook promote``).

The new frame is inserted as text after the watch's last frame, so the rest of the YAML (comments,
order, quoting) stays exactly as the analyst wrote it. Its description comes from the cluster's
c-TF-IDF keywords and its examples from the passages closest to the centroid. The result is
validated with the codebook loader before the file is replaced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from framewatch.errors import ConfigError
from framewatch.processing.framing.cluster import ClusterSummary, OnlineClusterer, parse_emergent_id
from framewatch.processing.framing.codebook import parse_codebook


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(" ".join(text.split()), ensure_ascii=False)


def frame_block(summary: ClusterSummary, frame_id: str, label: str, dash_col: int, key_col: int) -> str:
    """YAML lines of the new frame, indented like the watch's existing frames."""
    keywords = ", ".join(summary.keywords) or summary.label
    description = f"Emergent framing ({summary.id}, {summary.size} passages) about: {keywords}."
    pad, key_pad = " " * dash_col, " " * key_col
    lines = [
        f"{pad}-{' ' * max(1, key_col - dash_col - 1)}id: {frame_id}",
        f"{key_pad}label: {_q(label)}",
        f"{key_pad}description: {_q(description)}",
    ]
    if summary.representatives:
        lines.append(f"{key_pad}examples:")
        lines.extend(f"{key_pad}  - {_q(t[:500])}" for t in summary.representatives)
    return "\n".join(lines) + "\n"


def insert_frame(text: str, watch_id: str, block_of: object) -> str:
    """Return codebook *text* with a frame block inserted after *watch_id*'s last frame.

    *block_of* is called with (dash column, key column) and returns the block's text.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        raise ConfigError("codebook: the file is empty")
    watches = _value(root, "watches")
    if not isinstance(watches, yaml.SequenceNode):
        raise ConfigError("codebook: watches: expected a list")
    for watch in watches.value:
        wid = _value(watch, "id")
        if isinstance(wid, yaml.ScalarNode) and wid.value == watch_id:
            frames = _value(watch, "frames")
            if not isinstance(frames, yaml.SequenceNode) or not frames.value:
                raise ConfigError(f"codebook: watch {watch_id!r}: frames: expected a list")
            if frames.flow_style:
                raise ConfigError(f"codebook: watch {watch_id!r}: frames in flow style [...] cannot be extended in place")
            last = frames.value[-1]
            first = frames.value[0]
            key_col = first.start_mark.column
            dash_col = _dash_column(text, first.start_mark.line, key_col)
            lines = text.splitlines(keepends=True)
            end = last.end_mark
            # the mark lies just past the frame: at the next token, or at the end of its last line
            at_next_token = end.line >= len(lines) or not lines[end.line][: end.column].strip()
            end_line = end.line if at_next_token else end.line + 1
            # keep trailing blank lines and comments after the inserted frame
            while end_line > last.start_mark.line + 1 and not lines[end_line - 1].strip():
                end_line -= 1
            head = "".join(lines[:end_line])
            if head and not head.endswith("\n"):
                head += "\n"
            return head + block_of(dash_col, key_col) + "".join(lines[end_line:])  # type: ignore[operator]
    raise ConfigError(f"codebook: no watch {watch_id!r}")


def _value(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _dash_column(text: str, line: int, key_col: int) -> int:
    row = text.splitlines()[line]
    dash = row.rfind("-", 0, key_col)
    return dash if dash >= 0 else max(0, key_col - 2)


def promote_cluster(
    codebook_path: Path, state_dir: Path, watch_id: str, cluster_id: str, frame_id: str, label: str
) -> str:
    """Write cluster *cluster_id* of *watch_id* into the codebook as frame *frame_id*; returns new text."""
    text = codebook_path.read_text(encoding="utf-8")
    codebook = parse_codebook(text, str(codebook_path))
    watch = codebook.watch(watch_id)
    if frame_id in watch.frame_ids:
        raise ConfigError(f"{codebook_path}: watch {watch_id!r} already has a frame {frame_id!r}")
    clusterer = OnlineClusterer.load(state_dir / "clusters" / watch_id)
    summary = clusterer.summary(parse_emergent_id(cluster_id))
    if summary is None:
        raise ConfigError(f"no emergent cluster {cluster_id!r} for watch {watch_id!r} under {state_dir}")
    new_text = insert_frame(
        text, watch_id, lambda dash, key: frame_block(summary, frame_id, label, dash, key)
    )
    parse_codebook(new_text, str(codebook_path))  # never write a codebook the loader rejects
    tmp = codebook_path.with_name(codebook_path.name + ".tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, codebook_path)
    return new_text
