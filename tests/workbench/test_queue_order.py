"""The labelling queue's order: the least sure passages in turns over the frames, the least labelled first."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from framewatch.processing.workbench.queue import balanced_order, in_queue_order

FRAMES = ["economic", "politics", "rights"]


def test_each_turn_offers_every_frame_its_least_sure_passage_the_least_labelled_frame_first() -> None:
    margins = [0.01, 0.02, 0.03, 0.30, 0.40, 0.05]
    tops = [["politics", "economic"], ["politics", "economic"], ["politics", "economic"],
            ["rights", "politics"], ["rights", "economic"], ["economic", "politics"]]
    # plain least-margin order would give three politics/economic mix-ups before any rights passage
    assert balanced_order(margins, tops, {"politics": 5, "economic": 3, "rights": 0}) == [3, 0, 1, 4, 2, 5]
    # no labels yet: the frame with the least sure passage goes first, so the queue still opens with it
    assert balanced_order(margins, tops, {})[0] == 0


def test_only_the_two_most_likely_frames_offer_a_passage_and_frameless_ones_come_last() -> None:
    labelled = {"politics": 1, "economic": 1}
    order = balanced_order([0.0, 0.5, 0.1], [["politics", "economic", "rights"], [], ["rights"]], labelled)
    assert order == [2, 0, 1]  # "rights" goes first but is not offered passage 0, its third frame


@given(st.lists(st.tuples(st.floats(0, 1), st.lists(st.sampled_from(FRAMES), max_size=3, unique=True)), max_size=40),
       st.dictionaries(st.sampled_from(FRAMES), st.integers(0, 50)))
def test_the_order_is_a_permutation_and_each_frame_offers_least_sure_first(
        rows: list[tuple[float, list[str]]], labelled: dict[str, int]) -> None:
    margins, tops = [m for m, _ in rows], [t for _, t in rows]
    assert sorted(balanced_order(margins, tops, labelled)) == list(range(len(rows)))
    single = [t[:1] for t in tops]  # one frame a passage: each frame's passages come least sure first
    order = balanced_order(margins, single, labelled)
    for frame in [*FRAMES, None]:
        mine = [margins[i] for i in order if (single[i][0] if single[i] else None) == frame]
        assert mine == sorted(mine)
    if order:  # every turn offers each frame once, the least labelled frame first
        first = order[:len({t[0] for t in single if t})]
        assert len({single[i][0] for i in first if single[i]}) == len(first) or not single[order[0]]


def _rows(*specs: tuple[str, float, list[tuple[str, float]]]) -> pl.DataFrame:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return pl.DataFrame([{"item_key": key, "segment_index": 0, "watch_id": key.split(":")[0], "published_at": at,
                          "margin": margin, "top": [{"frame": f, "score": s} for f, s in top]}
                         for key, margin, top in specs])


def test_queue_rows_count_each_watchs_labels_and_ignore_none_skips_and_cleared() -> None:
    rows = _rows(("w:a", 0.01, [("politics", 0.5), ("economic", 0.49)]),
                 ("w:b", 0.02, [("economic", 0.4), ("politics", 0.38)]),  # economic: politics' runner-up in "w:a" too
                 ("w:c", 0.20, [("rights", 0.3), ("economic", 0.1)]),
                 ("w:d", 0.05, [("politics", 0.45), ("economic", 0.4)]))
    labels = ([{"item_key": f"w:x{i}", "frame": "rights"} for i in range(3)]
              + [{"item_key": f"w:y{i}", "frame": "economic"} for i in range(2)]
              + [{"item_key": "w:z", "frame": "none"}, {"item_key": "w:s", "frame": None, "skipped": True}, None]
              + [{"item_key": f"other:q{i}", "frame": "politics"} for i in range(9)])  # another watch's labels
    got = in_queue_order(rows, labels)
    # politics (0 labels in w) first, then economic (2), then rights (3), each its least sure passage not
    # offered yet: rights' "w:c" comes before the surer "w:d" (by margin alone: a, b, d, c)
    assert got["item_key"].to_list() == ["w:a", "w:b", "w:c", "w:d"]
    assert got.columns == rows.columns and in_queue_order(rows.clear(), labels).height == 0
