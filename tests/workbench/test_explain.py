"""The words and marks the pages put on segments and clusters."""

from __future__ import annotations

from html import unescape

from hypothesis import given
from hypothesis import strategies as st

from framewatch.processing.workbench.clusters import growth_words, keywords
from framewatch.processing.workbench.explain import (
    UNCERTAIN_MARGIN,
    explanation,
    frame_class,
    highlight,
)


def seg(frame: str | None, score: float, margin: float, **more: object) -> dict[str, object]:
    top = [{"frame": frame or "trade", "score": score}, {"frame": "military", "score": score - margin}]
    return {"frame": frame, "score": score, "margin": margin, "top": top, "nearest_examples": ["ports are watched"],
            "labels": [], "duplicate_of": None, **more}


def test_explanation_names_frame_score_runner_up_and_example() -> None:
    words = explanation(seg("surveillance", 0.71, 0.2))
    assert words.startswith("Framed as surveillance with a score of 0.71, 0.20 ahead of the runner-up, military (0.51)")
    assert "\u201cports are watched\u201d" in words and "uncertain" not in words
    assert "uncertain" in explanation(seg("surveillance", 0.5, UNCERTAIN_MARGIN / 2))
    assert "Analyst labels: trade" in explanation(seg("surveillance", 0.5, 0.3, labels=["trade"]))


def test_explanation_of_an_unframed_segment() -> None:
    words = explanation(seg(None, 0.2, 0.0))
    assert words.startswith("No frame") and "trade at 0.20" in words


@given(st.text(max_size=80), st.text(max_size=8))
def test_highlight_escapes_everything_but_its_marks(text: str, term: str) -> None:
    out = str(highlight(text, term))
    stripped = out.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in stripped and ">" not in stripped
    if term and term in text:
        assert "<mark>" in out
    assert unescape(stripped) == text


def test_a_term_never_lands_inside_an_entity() -> None:
    assert str(highlight("a & b", "amp")) == "a &amp; b"


def test_highlight_marks_every_case_insensitive_hit() -> None:
    assert str(highlight("Ports <b> and PORTS", "ports")) == "<mark>Ports</mark> &lt;b&gt; and <mark>PORTS</mark>"


def test_keywords_count_each_passage_once_and_skip_stop_words() -> None:
    texts = ["The harbour cameras, cameras everywhere", "harbour cameras again", "the harbour at night"]
    assert keywords(texts, 2) == ["harbour", "cameras"]
    assert "the" not in keywords(texts)


def test_growth_in_words() -> None:
    assert growth_words(6, 3) == "6 in the last day, +100% on the day before (3)"
    assert growth_words(2, 0) == "2 in the last day (none the day before)"
    assert growth_words(0, 0) == "no segments in the last two days"
    assert frame_class("trade") == frame_class("trade") and frame_class(None) == "f-none"
