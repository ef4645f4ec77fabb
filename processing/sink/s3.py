"""The lake on an S3-compatible object store (AWS, SeaweedFS, MinIO, ...), through boto3.

A PUT is atomic (an object appears whole or not at all) and durable once the store answered
it, with a Content-MD5 the store checks, so nothing half-written ever needs cleaning. Endpoint,
region and credentials come from the settings; without credentials boto3's standard chain (an
instance role, AWS_* variables) applies. Every failure is a ``StorageError``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from framewatch.processing.sink.layout import StoredFile
from framewatch.processing.sink.storage import StorageError
from framewatch.settings import Settings

log = logging.getLogger(__name__)


def split_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at its ends) of ``s3://bucket/prefix``."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {url!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


class S3Storage:
    """Objects under ``s3://bucket/prefix``; the client is thread-safe (loop and compactor share it)."""

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.bucket, self.prefix = split_url(url)
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        """A store with the settings' endpoint, region and credentials."""
        secret = settings.sink_s3_secret_access_key
        client = boto3.session.Session().client(
            "s3", endpoint_url=settings.sink_s3_endpoint or None, region_name=settings.sink_s3_region,
            aws_access_key_id=settings.sink_s3_access_key_id or None,
            aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                          s3={"addressing_style": "path"}),
        )
        return cls(settings.sink_url.strip(), client)

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (a fresh local store)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(f"cannot reach bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach {self.url}: {exc}") from exc
        try:
            self.client.create_bucket(Bucket=self.bucket)
            log.info("created bucket %s", self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot create bucket {self.bucket}: {exc}") from exc

    def put(self, path: str, data: bytes) -> None:
        """One PUT with a Content-MD5 the store verifies; returns once the store has it."""
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, ContentMD5=md5)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot write {self.url}/{path}: {exc}") from exc

    def get(self, path: str) -> bytes:
        """The object's bytes."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot read {self.url}/{path}: {exc}") from exc

    def list(self, prefix: str) -> list[StoredFile]:
        """Objects under the folder *prefix*, paths relative to the lake's root."""
        base = self._key(prefix).rstrip("/") + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        out = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                out += [StoredFile(obj["Key"][strip:], int(obj["Size"])) for obj in page.get("Contents", ())]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot list {self.url}/{prefix}: {exc}") from exc
        return sorted(out, key=lambda f: f.path)

    def delete(self, path: str) -> None:
        """Delete the object (S3 answers a missing key with success too)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot delete {self.url}/{path}: {exc}") from exc

    def clean_temp(self) -> int:
        """Nothing to clean: a PUT leaves no partial object (no multipart uploads are started)."""
        return 0

    def storage_options(self, settings: Settings) -> dict[str, str]:
        """Options for polars/object_store readers of this lake (``pl.scan_parquet``)."""
        options = {"aws_region": settings.sink_s3_region}
        if settings.sink_s3_endpoint:
            options["aws_endpoint_url"] = settings.sink_s3_endpoint
            options["aws_allow_http"] = str(settings.sink_s3_endpoint.startswith("http://")).lower()
        if settings.sink_s3_access_key_id and settings.sink_s3_secret_access_key is not None:
            options["aws_access_key_id"] = settings.sink_s3_access_key_id
            options["aws_secret_access_key"] = settings.sink_s3_secret_access_key.get_secret_value()
        return options
