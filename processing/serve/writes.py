"""Write routes: segment labels and cluster promotion (analyst), subscriptions and tokens (admin)."""


import json
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from framewatch.processing.alerts.live import subscription_id
from framewatch.processing.serve import items as item_queries
from framewatch.processing.serve import models as m
from framewatch.processing.serve import reads
from framewatch.processing.serve.auth import BOOTSTRAP_ID, TokenRecord, require
from framewatch.processing.serve.subscriptions import send_test
from framewatch.processing.serve.topics import label_key
from framewatch.settings import CODEBOOK_CHANGES, LABELS
from framewatch.timeutil import format_utc, utcnow

NONE_LABEL = "none"  # the answer "none of the codebook's frames": a label with no frame to learn

if TYPE_CHECKING:
    from framewatch.processing.serve.app import Paging, ServeContext

log = logging.getLogger(__name__)


def add_write_routes(router: APIRouter, ctx: "ServeContext", paging: "Paging") -> None:
    """Labels, promotion, subscriptions, tokens."""
    Analyst = Annotated[TokenRecord, Depends(require(ctx.tokens, "analyst"))]
    Admin = Annotated[TokenRecord, Depends(require(ctx.tokens, "admin"))]
    Page = Annotated[tuple[int, int], Depends(paging)]
    Index = Annotated[int, Path(ge=0, le=100_000)]
    assert ctx.writer is not None
    writer = ctx.writer

    def _label(key: str, index: int, frame: str | None, who: TokenRecord, skipped: bool = False) -> m.Label:
        row = item_queries.detail(ctx.lake, key)
        if row is None or not any(s["index"] == index for s in row["segments"]):
            raise HTTPException(404, "no such item or segment")
        at = utcnow()
        value: dict[str, Any] = {"item_key": key, "segment_index": index, "frame": frame, "by": who.name,
                                 "at": format_utc(at)}
        if skipped:
            value["skipped"] = True
        writer.put(LABELS, label_key(key, index), value)
        return m.Label(item_key=key, segment_index=index, frame=frame, by=who.name, at=at, topic=writer.topic(LABELS),
                       skipped=skipped)

    @router.put("/items/{key}/segments/{index}/label", response_model=m.Label, tags=["labels"])
    def set_label(key: str, index: Index, body: m.LabelRequest, who: Analyst) -> m.Label:
        """Give a segment a frame (kept on the compacted labels topic, with who and when)."""
        return _label(key, index, body.frame, who)

    @router.get("/labels/export", tags=["labels"], response_class=Response,
                responses={200: {"content": {"application/x-ndjson": {}}, "description": "One labelled passage a line."}})
    def export_labels(who: Analyst, watch: str | None = None) -> Response:
        """The analysts' labels as training data, one JSON line per labelled passage (``id``,
        ``text``, ``labels``, ``watch_id``, ``by``, ``at``), for ``framewatch codebook train``;
        a ``none`` answer has no labels, skipped and cleared passages are left out."""
        kept = {k: v for k, v in writer.read(LABELS).items() if v and v.get("frame")}
        if watch is not None:
            kept = {k: v for k, v in kept.items() if str(v.get("item_key", "")).startswith(f"{watch}:")}
        texts = reads.segment_texts(ctx.lake, {str(v["item_key"]) for v in kept.values()})
        lines = []
        for key, v in sorted(kept.items()):
            found = texts.get((str(v["item_key"]), int(v["segment_index"])))
            if found is None:  # the passage is not in the lake (any more): nothing to learn from
                continue
            frame = str(v["frame"])
            lines.append(json.dumps({"id": key, "text": found[1], "labels": [] if frame == NONE_LABEL else [frame],
                                     "watch_id": found[0], "by": v.get("by"), "at": v.get("at")}, ensure_ascii=False))
        return Response("".join(f"{line}\n" for line in lines), media_type="application/x-ndjson")

    @router.post("/items/{key}/segments/{index}/skip", response_model=m.Label, tags=["labels"])
    def skip(key: str, index: Index, who: Analyst) -> m.Label:
        """Take a passage out of the labelling queue without a label (no frame, marked skipped)."""
        return _label(key, index, None, who, skipped=True)

    @router.delete("/items/{key}/segments/{index}/label", response_model=m.Label, tags=["labels"])
    def clear_label(key: str, index: Index, who: Analyst) -> m.Label:
        """Clear a segment's label (a record with frame null, so who cleared it is kept)."""
        return _label(key, index, None, who)

    @router.post("/clusters/{cluster}/promote", response_model=m.PromoteResult, tags=["clusters"])
    def promote(cluster: str, body: m.PromoteRequest, who: Analyst) -> m.PromoteResult:
        """Name an emergent cluster as a new frame: a new codebook version when a codebook is
        configured (FRAMEWATCH_SERVE_CODEBOOK_PATH), else a record on the codebook-changes topic."""
        found = reads.clusters(ctx.lake, body.watch)
        if found.height == 0 or cluster not in found["id"].to_list():
            raise HTTPException(404, f"no cluster {cluster!r} in watch {body.watch!r}")
        codebook = ctx.settings.serve_codebook_path
        if codebook is not None:
            from framewatch.processing.analyst.promote import promote_cluster
            from framewatch.processing.framing.codebook import parse_codebook

            try:
                text = promote_cluster(codebook, ctx.settings.state_dir / "processing", body.watch, cluster,
                                       body.frame_id, body.label)
            except (ValueError, OSError) as exc:
                raise HTTPException(400, f"promotion failed: {exc}") from None
            version = parse_codebook(text, str(codebook)).version
            log.info("cluster %s of %s promoted to frame %s by %s", cluster, body.watch, body.frame_id, who.name)
            return m.PromoteResult(cluster=cluster, watch=body.watch, frame_id=body.frame_id, mode="codebook",
                                   codebook_version=version, topic=None, detail=f"codebook {codebook} is now version {version}")
        row = found.filter(found["id"] == cluster).row(0, named=True)
        writer.put(CODEBOOK_CHANGES, f"{body.watch}:{cluster}", {
            "action": "promote", "watch": body.watch, "cluster": cluster, "frame_id": body.frame_id,
            "label": body.label, "size": row["size"], "samples": row["samples"], "by": who.name,
            "at": format_utc(utcnow())})
        topic = writer.topic(CODEBOOK_CHANGES)
        return m.PromoteResult(cluster=cluster, watch=body.watch, frame_id=body.frame_id, mode="recorded",
                               codebook_version=None, topic=topic,
                               detail=f"no codebook configured (FRAMEWATCH_SERVE_CODEBOOK_PATH): recorded on {topic}")

    def _sub(row: dict[str, Any]) -> m.Subscription:
        return m.Subscription(**{**row, "channel": m.Channel(**row["channel"])})

    @router.get("/subscriptions", response_model=m.SubscriptionPage, tags=["subscriptions"])
    def list_subscriptions(page: Page, who: Admin) -> m.SubscriptionPage:
        """Every subscription: the file's, overlaid with the API's edits."""
        rows = ctx.book().list()
        nxt = page[0] + page[1]
        return m.SubscriptionPage(total=len(rows), offset=page[0], next_page_token=str(nxt) if nxt < len(rows) else None,
                                  subscriptions=[_sub(r) for r in rows[page[0]:nxt]])

    def _spec(body: m.SubscriptionSpec) -> dict[str, Any]:
        return body.model_dump(mode="json", by_alias=False)

    @router.post("/subscriptions", response_model=m.Subscription, status_code=201, tags=["subscriptions"])
    def create_subscription(body: m.SubscriptionSpec, who: Admin) -> m.Subscription:
        """Add a subscription (checked like a subscriptions file entry; kept on the topic)."""
        sub_id = subscription_id(body.subscriber, body.watch)
        if ctx.book().get(sub_id) is not None:
            raise HTTPException(409, f"{body.subscriber!r} already subscribes to watch {body.watch!r}")
        return _sub(ctx.book().put(sub_id, _spec(body)))

    @router.get("/subscriptions/{sub_id}", response_model=m.Subscription, tags=["subscriptions"])
    def one_subscription(sub_id: str, who: Admin) -> m.Subscription:
        """One subscription."""
        row = ctx.book().get(sub_id)
        if row is None:
            raise HTTPException(404, "no such subscription")
        return _sub(row)

    @router.put("/subscriptions/{sub_id}", response_model=m.Subscription, tags=["subscriptions"])
    def edit_subscription(sub_id: str, body: m.SubscriptionSpec, who: Admin) -> m.Subscription:
        """Replace a subscription (its subscriber and watch stay: they make its id)."""
        row = ctx.book().get(sub_id)
        if row is None:
            raise HTTPException(404, "no such subscription")
        if (body.subscriber, body.watch) != (row["subscriber"], row["watch"]):
            raise HTTPException(400, "subscriber and watch cannot change; delete and create instead")
        return _sub(ctx.book().put(sub_id, _spec(body)))

    @router.delete("/subscriptions/{sub_id}", response_model=m.Subscription, tags=["subscriptions"])
    def delete_subscription(sub_id: str, who: Admin) -> m.Subscription:
        """Delete a subscription (a tombstone on the topic)."""
        row = ctx.book().get(sub_id)
        if row is None or not ctx.book().delete(sub_id):
            raise HTTPException(404, "no such subscription")
        return _sub(row)

    @router.post("/subscriptions/{sub_id}/test", response_model=m.TestResult, tags=["subscriptions"])
    def test_subscription(sub_id: str, who: Admin) -> m.TestResult:
        """Send a test alert through the notifier's delivery code (secrets from this process's environment)."""
        row = ctx.book().get(sub_id)
        if row is None:
            raise HTTPException(404, "no such subscription")
        error = send_test(row, os.environ, ctx.settings.notify_timeout_s, 1)
        return m.TestResult(subscription=sub_id, delivered=error is None, error=error)

    def _token(rec: TokenRecord) -> m.Token:
        return m.Token(id=rec.id, name=rec.name, role=rec.role, created_at=rec.created_at)  # type: ignore[arg-type]

    @router.post("/tokens", response_model=m.TokenCreated, status_code=201, tags=["tokens"])
    def create_token(body: m.TokenRequest, who: Admin) -> m.TokenCreated:
        """A new token; its plaintext is in this answer only."""
        rec, token = ctx.tokens.create(body.name, body.role)
        return m.TokenCreated(**_token(rec).model_dump(), token=token)

    @router.get("/tokens", response_model=m.TokenPage, tags=["tokens"])
    def list_tokens(page: Page, who: Admin) -> m.TokenPage:
        """Tokens (never their secrets)."""
        rows = ctx.tokens.list()
        nxt = page[0] + page[1]
        return m.TokenPage(total=len(rows), offset=page[0], next_page_token=str(nxt) if nxt < len(rows) else None,
                           tokens=[_token(r) for r in rows[page[0]:nxt]])

    @router.delete("/tokens/{token_id}", response_model=m.Token, tags=["tokens"])
    def delete_token(token_id: str, who: Admin) -> m.Token:
        """Revoke a token."""
        if token_id == BOOTSTRAP_ID:
            raise HTTPException(400, "the bootstrap token comes from FRAMEWATCH_SERVE_ADMIN_TOKEN: change it there")
        rec = next((t for t in ctx.tokens.list() if t.id == token_id), None)
        if rec is None or not ctx.tokens.delete(token_id):
            raise HTTPException(404, "no such token")
        return _token(rec)
