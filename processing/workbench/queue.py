"""The labelling queue page: the passages the model is least sure of, first, each answered with a
frame, "none" (none of the codebook's frames) or "skip"; an answer takes it out of the queue.

The list and the answers go through the API's own routes in-process (``/queue``, the label and
skip routes), so roles and validation are the API's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

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
