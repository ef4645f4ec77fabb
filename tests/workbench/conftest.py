"""Fixtures of the workbench tests: the real app (API and pages) under uvicorn on 127.0.0.1 over a
lake with an alert and the items behind it, and clients signed in through the login form."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from framewatch.processing.serve.app import ServeContext
from framewatch.processing.serve.cli import bind, build_context, make_server, url_of
from tests.serve.conftest import ADMIN, serve_settings
from tests.serve.lake import Lake
from tests.workbench import lake as workbench_lake

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Workbench:
    """A running app: its root URL, context, fixture lake and a token per role."""

    root: str
    ctx: ServeContext
    lake: Lake
    tokens: dict[str, str]

    @contextmanager
    def client(self, role: str | None = "analyst") -> Iterator[httpx.Client]:
        """An HTTP client signed in through the login form with *role*'s token (None: not signed in)."""
        with httpx.Client(base_url=self.root, timeout=60) as client:
            if role is not None:
                resp = client.post("/ui/login", data={"token": self.tokens[role], "next": "/ui/"})
                assert resp.status_code == 303, resp.text
            yield client


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest.fixture
def workbench(tmp_path: Path) -> Iterator[Workbench]:
    """The API and workbench over the workbench's fixture lake, tokens for viewer, analyst and admin."""
    yield from serve_workbench(tmp_path)


def serve_workbench(tmp_path: Path, **overrides: object) -> Iterator[Workbench]:
    """Run the app as the ``workbench`` fixture does, with settings *overrides*; stop it after the yield."""
    lake = workbench_lake.build(tmp_path / "lake")
    settings = serve_settings(tmp_path, lake.root, **overrides)
    ctx = build_context(settings)
    ctx.now = lambda: lake.now
    sock = bind("127.0.0.1", 0)
    server = make_server(ctx)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        assert thread.is_alive(), "the app's thread died"
        time.sleep(0.02)
    tokens = {"admin": ADMIN, "viewer": ctx.tokens.create("vera", "viewer")[1],
              "analyst": ctx.tokens.create("ana", "analyst")[1]}
    yield Workbench(url_of(sock).removesuffix("/api/v1"), ctx, lake, tokens)
    server.should_exit = True
    thread.join(timeout=10)
    if ctx.writer is not None:
        ctx.writer.close()
