"""A real S3-compatible object store for tests: SeaweedFS (Apache-2.0) on 127.0.0.1.

``scripts/install-weed.sh`` builds its ``weed`` binary from the Go module proxy into
``~/.cache/framewatch/tools-weed``. :func:`seaweedfs` starts ``weed server -s3`` (master,
volume, filer and S3 gateway in one process) on held free ports, with a temp data folder and one
S3 identity, waits until the gateway answers an authenticated request, yields its endpoint and
keys, and stops it. Without the binary, or when it does not come up, it skips with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.ports import held_ports

WEED_CACHE = Path.home() / ".cache" / "framewatch" / "tools-weed" / "weed"
ACCESS_KEY = "framewatch-test"
SECRET_KEY = "framewatch-test-secret-key"  # a throwaway key of a store that lives for one session
START_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class ObjectStore:
    """A running store: its endpoint URL and the keys of its one identity."""

    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> object:
        """A boto3 S3 client for this store."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, config=Config(s3={"addressing_style": "path"}),
        )


def weed_binary() -> Path | None:
    """The weed binary: $FRAMEWATCH_WEED, on PATH, or the install script's cache."""
    env = os.environ.get("FRAMEWATCH_WEED")
    for candidate in (env, shutil.which("weed"), str(WEED_CACHE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def _ready(store: ObjectStore) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        store.client().list_buckets()  # type: ignore[attr-defined]
    except (BotoCoreError, ClientError):
        return False
    return True


@contextlib.contextmanager
def seaweedfs(workdir: Path) -> Iterator[ObjectStore]:
    """Start SeaweedFS with its data under *workdir*; skip the test when it cannot run."""
    weed = weed_binary()
    if weed is None:
        pytest.skip(f"no SeaweedFS binary: run scripts/install-weed.sh (builds {WEED_CACHE}) or set FRAMEWATCH_WEED")
    data = workdir / "weed-data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "framewatch", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    log_path = workdir / "weed.log"
    with held_ports(8) as ports:  # held until weed binds them (it binds with SO_REUSEADDR)
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
        # every port explicit: weed's defaults (port + 10000 for gRPC, fixed ones) collide in parallel runs
        args = [
            str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-s3", "-filer",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", "-volume.max=8",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        store = ObjectStore(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY)
        try:
            _wait_ready(store, proc, log_path)
        except BaseException:
            _stop(proc)
            raise
    try:
        yield store
    finally:
        _stop(proc)


def _wait_ready(store: ObjectStore, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _ready(store):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-1500:]
            pytest.skip(f"SeaweedFS did not come up (exit {proc.poll()}): {tail}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)  # weed lingers ~20 s on SIGTERM; its data is a temp folder anyway
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
