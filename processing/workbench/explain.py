"""Why a segment got its frame, in words, and passages marked up for the lists (escaped first)."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

UNCERTAIN_MARGIN = 0.05  # below this the runner-up frame was nearly as close


def explanation(seg: dict[str, Any]) -> str:
    """One or two sentences on the segment's frame, score, margin, runner-up and examples."""
    frame, score, margin = seg.get("frame"), float(seg.get("score") or 0.0), float(seg.get("margin") or 0.0)
    others = [t for t in seg.get("top") or [] if t.get("frame") != frame]
    runner = f" the runner-up, {others[0]['frame']} ({others[0]['score']:.2f})," if others else " the next frame"
    if frame is None:
        best = (seg.get("top") or [{}])[0]
        near = f" its closest frame was {best['frame']} at {best['score']:.2f}" if best.get("frame") else ""
        return f"No frame: no frame scored above the threshold;{near}." if near else "No frame: no frame scored above the threshold."
    words = [f"Framed as {frame} with a score of {score:.2f}, {margin:.2f} ahead of{runner.rstrip(',')}."]
    if margin < UNCERTAIN_MARGIN:
        words.append("The margin is small, so this call is uncertain: a label here teaches the model most.")
    examples = seg.get("nearest_examples") or []
    if examples:
        words.append(f"Closest codebook example: \u201c{examples[0]}\u201d.")
    if seg.get("labels"):
        words.append(f"Analyst labels: {', '.join(seg['labels'])}.")
    if seg.get("duplicate_of"):
        words.append(f"The same text appeared before in {seg['duplicate_of']}.")
    return " ".join(words)


def highlight(text: str, term: str | None) -> Markup:
    """*text* escaped, with each case-insensitive occurrence of the search *term* in <mark>
    (matched on the raw text, so a term never lands inside an escaped entity)."""
    if not term:
        return escape(text or "")
    out, last = Markup(""), 0
    for hit in re.finditer(re.escape(term), text or "", re.IGNORECASE):
        if hit.end() == hit.start():
            continue
        out += escape(text[last:hit.start()]) + Markup("<mark>") + escape(hit.group(0)) + Markup("</mark>")
        last = hit.end()
    return out + escape((text or "")[last:])


def frame_class(frame: str | None) -> str:
    """A CSS class for a frame's colour (a stable one of eight)."""
    if not frame:
        return "f-none"
    return f"f{sum(frame.encode('utf-8')) % 8}"
