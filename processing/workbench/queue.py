"""The labelling queue: its order (least sure first, in turns over the frames, the least labelled
frame first) and its page, each passage answered with a frame, "none" (none of the codebook's
frames) or "skip"; an answer takes it out of the queue.

The list and the answers go through the API's own routes in-process (``/queue``, the label and
skip routes), so roles and validation are the API's.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import polars as pl
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from framewatch.processing.serve import reads
from framewatch.processing.serve.writes import NONE_LABEL
from framewatch.processing.workbench.forms import form_of, problem, relay
from framewatch.processing.workbench.render import page
from framewatch.processing.workbench.session import Sessions

if TYPE_CHECKING:
    from framewatch.processing.serve.app import ServeContext

SHOWN = 25
NONE = NONE_LABEL
CONTENDERS = 2  # a passage is offered for each of its two most likely frames (the pair its margin is between)


def balanced_order(margins: Sequence[float], tops: Sequence[Sequence[Hashable]],
                   labelled: Mapping[Hashable, int]) -> list[int]:
    """Positions of the passages in queue order: in turns, each frame offers its least sure passage
    not offered yet, among those with the frame as one of their two most likely (*tops*, most
    likely first); the frame with the fewest labels so far (*labelled*) goes first in every turn,
    ties to the frame with the least sure passage. Passages without frames come last, least sure first.

    Plain least-margin order spends a batch on the frames the model already mixes up most (in
    GVFC: politics against public opinion) and seldom offers the rare frames, which weigh as much
    in macro-F1; in turns, each batch covers every frame. On GVFC it is level with least-margin
    order at 100 labels and ahead at 200 (bench/active_learning.py)."""
    by_margin = sorted(range(len(margins)), key=lambda i: margins[i])
    offers: dict[Hashable, list[int]] = {}
    for i in by_margin:
        for frame in tops[i][:CONTENDERS]:
            offers.setdefault(frame, []).append(i)
    turns = sorted(offers, key=lambda f: (labelled.get(f, 0), margins[offers[f][0]], str(f)))
    order: list[int] = []
    placed: set[int] = set()
    next_of = dict.fromkeys(turns, 0)
    while True:
        offered = False
        for frame in turns:
            mine, k = offers[frame], next_of[frame]
            while k < len(mine) and mine[k] in placed:
                k += 1
            if k < len(mine):
                order.append(mine[k])
                placed.add(mine[k])
                offered = True
                k += 1
            next_of[frame] = k
        if not offered:
            break
    return order + [i for i in by_margin if i not in placed]


def in_queue_order(rows: pl.DataFrame, labels: Iterable[Mapping[str, Any] | None]) -> pl.DataFrame:
    """The queue's rows (``watch_id``, ``margin``, ``top``) in :func:`balanced_order`, counting the
    frames of *labels* (values of the labels topic) per watch; "none", skips and cleared labels
    count for no frame."""
    if rows.height == 0:
        return rows
    labelled: dict[Hashable, int] = {}
    for v in labels:
        if v and v.get("frame") and v["frame"] != NONE_LABEL:
            key = (str(v.get("item_key", "")).split(":", 1)[0], str(v["frame"]))  # a key starts with its watch
            labelled[key] = labelled.get(key, 0) + 1
    tops = [[(watch, t["frame"]) for t in sorted(top or [], key=lambda t: -t["score"])]
            for watch, top in zip(rows["watch_id"].to_list(), rows["top"].to_list(), strict=True)]
    order = balanced_order(rows["margin"].fill_null(0.0).to_list(), tops, labelled)
    return rows.select(pl.all().gather(order))


def add_queue_routes(router: APIRouter, ctx: ServeContext, sessions: Sessions) -> None:
    """GET /ui/queue and POST /ui/queue/answer."""

    @router.get("/ui/queue", response_class=HTMLResponse, include_in_schema=False)
    async def queue(request: Request, watch: str | None = None, done: str | None = None,
                    error: str | None = None) -> HTMLResponse:
        who = sessions.who(request)
        params = {"limit": SHOWN, **({"watch": watch} if watch else {})}
        resp = await relay(request, sessions, "GET", f"/queue?{urlencode(params)}", None)
        body = resp.json() if resp.status_code == 200 else {"entries": [], "total": 0}
        if resp.status_code != 200:
            error = error or problem(resp)
        # the frames an answer may give, by watch (the frames the watch's aggregates count)
        frames = {row["id"]: [f for f in row["frames"] if f != "*"] for row in reads.watches(ctx.lake).to_dicts()}
        return page(request, "queue.html", who, sessions.csrf(request), title="Labelling queue", entries=body["entries"],
                    total=body["total"], watch=watch, frames=frames, none=NONE, done=done, error=error)

    @router.post("/ui/queue/answer", include_in_schema=False)
    async def answer(request: Request) -> Response:
        sessions.who(request, "analyst")
        form = await form_of(request)
        sessions.check_csrf(request, form.get("csrf", ""))
        key, index, choice = form.get("item_key", ""), form.get("segment_index", ""), form.get("answer", "").strip()
        if not key or not index.isdigit() or not choice:
            raise HTTPException(400, "item_key, segment_index and an answer are needed")
        path = f"/items/{quote(key, safe=':')}/segments/{index}"
        resp = await (relay(request, sessions, "POST", f"{path}/skip", None) if choice == "skip" else
                      relay(request, sessions, "PUT", f"{path}/label", {"frame": choice}))
        back = {**({"watch": form["watch"]} if form.get("watch") else {})}
        if resp.status_code != 200:
            back["error"] = problem(resp)
        else:
            back["done"] = f"{key} #{index}: {choice}"
        return RedirectResponse(f"/ui/queue?{urlencode(back)}", status_code=303)
