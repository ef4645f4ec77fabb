"""Fixtures of the API tests: a fixture lake and the real app under uvicorn on 127.0.0.1."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from framewatch.processing.serve.app import ServeContext
from framewatch.processing.serve.cli import bind, build_context, make_server, url_of
from framewatch.settings import Settings
from tests.serve import lake as fixture_lake

ADMIN = "admin-" + uuid.uuid4().hex  # the bootstrap token of every test server


@dataclass
class Running:
    """A live API: its base URL, context and the lake it reads."""

    url: str
    ctx: ServeContext
    lake: fixture_lake.Lake

    def client(self, token: str | None = ADMIN) -> httpx.Client:
        """An HTTP client sending *token* (None: no Authorization header)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve_settings(tmp_path: Path, lake_root: Path, **overrides: object) -> Settings:
    """Settings of a test server: loopback, a unique topic prefix, small pages."""
    values: dict[str, object] = {
        "kafka_bootstrap": os.environ.get("FRAMEWATCH_TEST_KAFKA", "127.0.0.1:1"),
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "topic_partitions": 1, "state_dir": tmp_path / "state",
        "sink_url": str(lake_root), "serve_admin_token": ADMIN, "serve_page_max": 50, "serve_port": 0,
        "notify_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start the real app under uvicorn on a free port of 127.0.0.1 over a fresh fixture lake."""
    servers: list[tuple[object, threading.Thread]] = []

    def start(**overrides: object) -> Running:
        root = tmp_path / f"lake{len(servers)}"
        lake = fixture_lake.build(root)
        settings = serve_settings(tmp_path, root, **overrides)
        ctx = build_context(settings)
        ctx.now = lambda: lake.now
        sock = bind(settings.serve_host, 0)
        server = make_server(ctx)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the API did not start"
            assert thread.is_alive(), "the API thread died"
            time.sleep(0.02)
        servers.append((server, thread))
        return Running(url_of(sock), ctx, lake)

    yield start
    for server, thread in servers:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


@pytest.fixture
def api(serve_factory: Callable[..., Running]) -> Running:
    """One running API over the fixture lake (no Kafka needed for reads)."""
    return serve_factory()


def kafka_or_skip() -> str:
    """The test broker's address, or skip."""
    address = os.environ.get("FRAMEWATCH_TEST_KAFKA")
    if not address:
        pytest.skip("FRAMEWATCH_TEST_KAFKA is not set")
    return address
