"""Fixtures of the sink tests: a lake on the local disk or on a real object store (SeaweedFS),
the same tests over both, and readers that follow docs/read-model.md with plain polars."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from framewatch.contracts import MessageContext
from framewatch.kafka_io import Message
from framewatch.processing.sink.layout import KEYS
from framewatch.processing.sink.s3 import S3Storage
from framewatch.processing.sink.storage import LocalStorage, Storage
from tests.helpers.object_store import ObjectStore

BUCKET = "lake"


@dataclass
class Lake:
    """Where one test's sink writes: its settings, its Storage, and readers of its tables."""

    kind: str
    overrides: dict[str, Any]
    storage: Storage
    root: str
    storage_options: dict[str, str] | None = field(default=None)

    def rows(self, table: str) -> pl.DataFrame:
        """Every stored row of *table*, duplicates included, with the date/watch partition columns."""
        if not [f for f in self.storage.list(table) if f.name.endswith(".parquet")]:
            return pl.DataFrame()
        return pl.scan_parquet(f"{self.root}/{table}/**/*.parquet", hive_partitioning=True,
                               storage_options=self.storage_options).collect()

    def latest(self, table: str) -> pl.DataFrame:
        """The contract's reading: the last row per key by (_partition, _offset)."""
        rows = self.rows(table)
        if rows.is_empty():
            return rows
        return rows.sort(["_partition", "_offset"]).unique(KEYS[table], keep="last", maintain_order=True)

    def files(self, table: str) -> list[str]:
        """Paths of *table*'s files, relative to the lake."""
        return [f.path for f in self.storage.list(table)]


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A fresh lake per test, on the local disk and on the object store."""
    if request.param == "local":
        root = tmp_path / "lake"
        return Lake("local", {"sink_url": str(root)}, LocalStorage(root), str(root))
    store: ObjectStore = request.getfixturevalue("object_store")
    url = f"s3://{BUCKET}/t{uuid.uuid4().hex[:10]}"
    overrides = {"sink_url": url, "sink_s3_endpoint": store.endpoint, "sink_s3_access_key_id": store.access_key,
                 "sink_s3_secret_access_key": store.secret_key}
    storage = S3Storage(url, store.client())
    options = {"aws_endpoint_url": store.endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
               "aws_access_key_id": store.access_key, "aws_secret_access_key": store.secret_key}
    return Lake("s3", overrides, storage, url, options)


def message(topic: str, partition: int, offset: int, value: bytes | None, key: str = "k") -> Message:
    """A consumed message as the loop hands it over (a tombstone's value is b"")."""
    return Message(MessageContext(topic, partition, offset, key.encode()), value or b"")
