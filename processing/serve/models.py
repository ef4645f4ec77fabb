"""The API's request and response bodies: every response of `framewatch serve` is one of these."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "analyst", "admin"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"  # the subscriptions file's names


class Problem(BaseModel):
    """An error: what went wrong, in one line."""

    detail: str


class Page(BaseModel):
    """Paging of a list response: pass ``next_page_token`` back as ``page_token`` for more."""

    total: int = Field(description="Rows the query matches, over all pages.")
    offset: int = Field(description="Position of this page's first row.")
    next_page_token: str | None = Field(description="Token of the next page; null on the last page.")


class Watch(BaseModel):
    """A watch and the frames its aggregates count."""

    id: str
    frames: list[str]


class WatchPage(Page):
    """Watches, paged."""

    watches: list[Watch]


class SeriesBucket(BaseModel):
    """One time bucket: each frame's share of the watch's items (or its count), and the total."""

    start: datetime
    complete: bool = Field(description="False for a bucket that has not ended yet (its numbers still grow).")
    total: int = Field(description="Items of the watch in the bucket (all frames).")
    values: dict[str, float] = Field(description="frame -> share of the total (as=share) or item count (as=count).")


class SeriesPage(Page):
    """Share of voice by publication time, from the aggregates table."""

    watch: str
    bucket: Literal["5m", "1h", "1d"]
    measure: Literal["share", "count"]
    outlet: str
    buckets: list[SeriesBucket]


class AlertItem(BaseModel):
    """An item shown as evidence of an alert."""

    title: str | None
    url: str | None
    outlet: str | None
    passage: str | None
    published_at: datetime | None


class Alert(BaseModel):
    """A framing shift with the evidence behind it."""

    key: str
    watch_id: str
    frame: str
    rule: str
    window_start: datetime
    window_end: datetime
    baseline_share: float
    observed_share: float
    observed_count: int
    window_items: int
    score: float
    detected_at: datetime
    top_items: list[AlertItem]
    kind: str = Field("spike", description="spike (one hour), shift (a step that holds), drift (a slow rise) or emergent.")
    change_point: datetime | None = Field(None, description="Shifts and drifts: when the change is estimated to have begun.")
    share_before: float | None = None
    share_after: float | None = None
    share_after_low: float | None = Field(None, description="90% interval of the share after the change.")
    share_after_high: float | None = None
    detector: str | None = None
    false_alarm_rate_per_week: float | None = Field(None, description="The detector's stated false alarms per watch x frame and week.")
    delay_s: float | None = Field(None, description="Seconds from the change point to the detection.")
    sensitivity: Literal["low", "medium", "high"] | None = Field(
        None, description="Shifts and drifts: the level whose detector raised it; null for spikes and emergent framings.")


class AlertPage(Page):
    """Alerts, newest detection first."""

    alerts: list[Alert]


class ItemSummary(BaseModel):
    """One framed item as a list shows it; its reprints are folded into ``duplicates``."""

    key: str
    item_id: str
    watch_id: str
    published_at: datetime
    outlet: str | None
    frame: str | None
    title: str | None
    url: str | None
    duplicates: int = Field(description="Items of this result that are copies of this one (folded away).")


class ItemPage(Page):
    """Framed items matching a query, duplicates folded."""

    items: list[ItemSummary]


class FrameScore(BaseModel):
    """How close a segment is to one frame."""

    frame: str
    score: float


class Segment(BaseModel):
    """One segment with its frame and why it got it."""

    index: int
    text: str
    frame: str | None
    score: float
    margin: float
    labels: list[str]
    top: list[FrameScore]
    nearest_examples: list[str]
    duplicate_of: str | None
    cluster: str | None
    flags: list[str]


class Quote(BaseModel):
    """A passage the author quoted (never counted as the author's own text)."""

    text: str
    author: str | None
    source_post: str | None
    origin: str | None


class ItemDetail(ItemSummary):
    """One item: every segment's frame, score, margin, nearest examples and cluster, quotes apart."""

    kind: str
    processed_at: datetime
    frame_shares: dict[str, float]
    codebook_version: str
    model_id: str
    method: str
    duplicate_of: str | None
    segments: list[Segment]
    quotes: list[Quote]


class Cluster(BaseModel):
    """An emergent framing found by clustering segments."""

    id: str
    watch_id: str
    size: int = Field(description="Segments assigned to the cluster.")
    items: int = Field(description="Distinct items with a segment in the cluster.")
    samples: list[str] = Field(description="A few of its passages.")


class ClusterPage(Page):
    """Emergent clusters, largest first."""

    clusters: list[Cluster]


class PromoteRequest(BaseModel):
    """Name an emergent cluster as a new frame of its watch."""

    watch: str = Field(pattern=NAME_PATTERN)
    frame_id: str = Field(pattern=NAME_PATTERN)
    label: str = Field(min_length=1, max_length=200)


class PromoteResult(BaseModel):
    """What a promotion did: a new codebook version, or a record on the codebook-changes topic."""

    cluster: str
    watch: str
    frame_id: str
    mode: Literal["codebook", "recorded"]
    codebook_version: str | None
    topic: str | None
    detail: str


class LabelRequest(BaseModel):
    """The frame an analyst gives a segment; ``none``: it carries none of the codebook's frames."""

    frame: str = Field(min_length=1, max_length=200)


class QueueEntry(BaseModel):
    """A passage the model is least sure of, waiting for an analyst's answer."""

    item_key: str
    segment_index: int
    watch_id: str
    title: str | None
    published_at: datetime
    text: str
    frame: str | None = Field(description="The frame the model gave it.")
    score: float
    margin: float = Field(description="Score gap between its two closest frames: the smaller, the less sure.")
    top: list[FrameScore]


class QueuePage(Page):
    """The labelling queue, the most uncertain passage first; labelled and skipped ones are gone."""

    entries: list[QueueEntry]


class Label(BaseModel):
    """A segment's label as kept on the labels topic (frame null: cleared)."""

    item_key: str
    segment_index: int
    frame: str | None
    by: str
    at: datetime
    topic: str
    skipped: bool = False


class Channel(BaseModel):
    """Where a subscriber is told; secrets are named by environment variable, never given."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["webhook", "slack", "email"]
    url: str | None = Field(None, max_length=2000)
    secret_env: str | None = Field(None, max_length=200)
    to: list[str] | None = Field(None, max_length=50)
    sender: str | None = Field(None, alias="from", max_length=300)
    smtp_host: str | None = Field(None, max_length=300)
    smtp_port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] | None = None
    ca_file: str | None = Field(None, max_length=1000)
    username: str | None = Field(None, max_length=300)
    password_env: str | None = Field(None, max_length=200)


class SubscriptionSpec(BaseModel):
    """One subscription, as in the subscriptions file."""

    subscriber: str = Field(pattern=NAME_PATTERN)
    watch: str = Field(description="A watch id, or * for every watch.", max_length=100)
    frames: list[str] | None = Field(None, description="Frames to hear about; null: any.", max_length=100)
    min_score: float = Field(0.0, ge=0, le=1e6)
    rules: list[Literal["share_spike", "emergent_growth"]] | None = None
    kinds: list[Literal["spike", "shift", "drift", "emergent"]] | None = Field(None, description="Kinds of change to hear about; null: every kind.")
    digest: Literal["daily", "weekly"] | None = Field(None, description="One message per day or week listing each change, instead of one per alert.")
    sensitivity: Literal["low", "medium", "high"] | None = Field(
        None, description="Which level's shifts and drifts to hear about: low (about 1 false alarm in 2 years per watch x frame "
        "and detector), medium (1 in 32 weeks) or high (1 in 8 weeks); null: the deployment's FRAMEWATCH_ALERT_SENSITIVITY. "
        "Spikes and emergent framings come at every level.")
    channel: Channel


class Subscription(SubscriptionSpec):
    """A subscription with its id and where it came from."""

    id: str
    source: Literal["file", "api"]


class SubscriptionPage(Page):
    """Subscriptions, paged."""

    subscriptions: list[Subscription]


class TestResult(BaseModel):
    """Outcome of sending a test alert to one subscription."""

    subscription: str
    delivered: bool
    error: str | None


class TokenRequest(BaseModel):
    """A token to create."""

    name: str = Field(pattern=NAME_PATTERN)
    role: Role


class Token(BaseModel):
    """A token as listed (its secret is never shown again)."""

    id: str
    name: str
    role: Role
    created_at: datetime


class TokenCreated(Token):
    """A new token; ``token`` is shown this once and stored only as its sha256."""

    token: str


class TokenPage(Page):
    """Tokens, paged."""

    tokens: list[Token]
