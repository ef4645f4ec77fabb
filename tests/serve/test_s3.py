"""The API over a lake on a real S3-compatible store (SeaweedFS): same answers as on the local disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.object_store import ObjectStore
from tests.serve import lake as fixture_lake
from tests.serve.conftest import Running

BUCKET = "serve-lake"


@pytest.fixture(scope="module")
def store(object_store: ObjectStore) -> ObjectStore:
    object_store.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    return object_store


def _upload(store: ObjectStore, local: Path, prefix: str) -> int:
    client = store.client()
    files = sorted(local.rglob("*.parquet"))
    for path in files:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(local).as_posix()}",  # type: ignore[attr-defined]
                          Body=path.read_bytes())
    return len(files)


def test_reads_from_the_object_store_match_the_local_lake(store: ObjectStore, serve_factory: Callable[..., Running]) -> None:
    local = serve_factory()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    assert _upload(store, local.lake.root, prefix) > 10
    remote = serve_factory(sink_url=f"s3://{BUCKET}/{prefix}", sink_s3_endpoint=store.endpoint,
                           sink_s3_access_key_id=store.access_key, sink_s3_secret_access_key=store.secret_key)
    assert remote.ctx.lake.root.startswith("s3://")
    queries = [("/watches", {}), ("/items", {"watch": "china-scs", "limit": 50}), ("/items", {"q": "zanzibar"}),
               ("/watches/china-scs/series", {"bucket": "1h"}), ("/alerts", {}), ("/clusters", {}),
               ("/items/odd:watch:item031", {})]
    with local.client() as a, remote.client() as b:
        for path, params in queries:
            mine, theirs = a.get(path, params=params), b.get(path, params=params)
            assert theirs.status_code == 200, (path, theirs.text)
            if path.endswith("/series"):  # each server's clock is its own lake's "now"
                assert [x["values"] for x in theirs.json()["buckets"]] == [x["values"] for x in mine.json()["buckets"]]
            else:
                assert theirs.json() == mine.json(), path
    assert fixture_lake.WATCHES[2] == "odd:watch"  # the percent-encoded partition was read back
