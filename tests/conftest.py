"""Shared fixtures: a real Kafka broker (started by deploy/kafka/kafka.sh), unique topics and
groups per test, settings factories, and the path to ../shared when a clone has it."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from framewatch.kafka_io import ensure_topics
from framewatch.settings import Settings
from tests.helpers.object_store import ObjectStore, seaweedfs

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a running local broker. A broker already running is used and left
    alone; one this session had to start is stopped when the session ends."""
    port = os.environ.get("FRAMEWATCH_KAFKA_PORT", "19092")
    env = {**os.environ, "FRAMEWATCH_KAFKA_PORT": port}
    was_running = subprocess.run([str(KAFKA_SCRIPT), "status"], env=env, capture_output=True).returncode == 0
    result = subprocess.run([str(KAFKA_SCRIPT), "start"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"could not start Kafka: {result.stderr[-2000:]}")
    yield f"127.0.0.1:{port}"
    if not was_running:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], env=env, capture_output=True, check=False)


@pytest.fixture
def settings_factory(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings pointing at the test broker, with a unique topic prefix per test."""
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": prefix,
            "topic_partitions": 3,
            "state_dir": tmp_path / "state",
            "metrics_port": 0,
            "batch_max_wait_ms": 200,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def topic_factory(settings_factory: Callable[..., Settings]) -> Callable[[Settings, str], str]:
    """Create a logical topic for the given settings and return its full name."""

    def make(settings: Settings, logical: str, partitions: int = 3) -> str:
        name = settings.topic(logical)
        ensure_topics(settings, [name], partitions=partitions)
        return name

    return make


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of *topic*, up to its end offsets at the call (no idle timeout: what was
    produced before the call is all there, and nothing produced after it is)."""
    from framewatch.kafka_io import read_to_end

    settings = Settings(kafka_bootstrap=bootstrap)
    return [(key, value if value is not None else b"") for key, value in read_to_end(settings, topic)]


@pytest.fixture
def topic_reader(kafka_bootstrap: str) -> Callable[..., list[tuple[bytes | None, bytes]]]:
    """Return a function reading all records of a topic (keys and values) to its end."""
    return lambda topic: read_topic(kafka_bootstrap, topic)


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """../shared beside the clone; tests needing it skip in users' clones, which lack it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this clone (it exists only in the framewatch workplace)")
    yield SHARED


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """One SeaweedFS (a real S3 API) for the session, shared by the sink's and the API's tests,
    with the sink tests' bucket ``lake``; skips when it cannot run."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as store:
        store.client().create_bucket(Bucket="lake")  # type: ignore[attr-defined]
        yield store
