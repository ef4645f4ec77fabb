"""`framewatch dashboards push` against a fake Grafana on 127.0.0.1 (no real Grafana runs here):
the token header, the upsert calls and their bodies, and the missing-token error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from framewatch.cli import main
from framewatch.dashboards import DASHBOARDS


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: object


@dataclass
class FakeGrafana:
    """Just enough of Grafana's HTTP API for an upsert; records every request."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    datasources: dict[str, dict] = field(default_factory=dict)
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)

    def handle(self, method: str, path: str, body: object) -> tuple[int, object]:
        if method == "GET" and path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            return (200, self.datasources[uid]) if uid in self.datasources else (404, {"message": "Data source not found"})
        if method == "POST" and path == "/api/datasources":
            self.datasources[body["uid"]] = {**body, "id": 1}  # type: ignore[index]
            return 200, {"id": 1, "message": "Datasource added", "name": body["name"]}  # type: ignore[index]
        if method == "PUT" and path.startswith("/api/datasources/uid/"):
            self.datasources[path.rsplit("/", 1)[1]] = body  # type: ignore[assignment]
            return 200, {"message": "Datasource updated"}
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
        if method == "POST" and path == "/api/folders":
            self.folders[body["uid"]] = body  # type: ignore[index]
            return 200, {"id": 7, **body}  # type: ignore[dict-item]
        if method == "POST" and path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]  # type: ignore[index]
            self.dashboards[uid] = body  # type: ignore[assignment]
            return 200, {"status": "success", "uid": uid, "version": 1, "id": 1}
        return 404, {"message": f"fake Grafana has no {method} {path}"}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))
            status, reply = fake.handle(self.command, self.path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def _push(grafana: FakeGrafana, *extra: str, token: str | None = "s3cret") -> object:
    env = {"FW_TEST_GRAFANA_TOKEN": token} if token is not None else {}
    args = ["dashboards", "push", "--url", grafana.url, "--token-env", "FW_TEST_GRAFANA_TOKEN", *extra]
    return CliRunner().invoke(main, args, env=env)


def test_push_upserts_datasource_folder_and_dashboards(grafana: FakeGrafana) -> None:
    result = _push(grafana, "--prometheus-url", "http://prometheus:9090")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert all(r.headers.get("Authorization") == "Bearer s3cret" for r in grafana.requests)

    calls = [(r.method, r.path) for r in grafana.requests]
    assert calls[:2] == [("GET", "/api/datasources/uid/framewatch-prometheus"), ("POST", "/api/datasources")]
    datasource = grafana.requests[1].body
    assert datasource["type"] == "prometheus"  # type: ignore[index]
    assert datasource["url"] == "http://prometheus:9090"  # type: ignore[index]
    assert ("POST", "/api/folders") in calls
    posted = [r.body for r in grafana.requests if r.path == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in posted] == [s.uid for s in DASHBOARDS]  # type: ignore[index]
    for body in posted:
        assert body["overwrite"] is True  # type: ignore[index]
        assert body["folderUid"] == "framewatch"  # type: ignore[index]
        assert "id" not in body["dashboard"]  # type: ignore[index]
        variables = {v["name"]: v for v in body["dashboard"]["templating"]["list"]}  # type: ignore[index]
        assert variables["datasource"]["current"]["value"] == "framewatch-prometheus"


def test_second_push_updates_in_place(grafana: FakeGrafana) -> None:
    assert _push(grafana, "--prometheus-url", "http://prometheus:9090").exit_code == 0  # type: ignore[attr-defined]
    grafana.requests.clear()
    result = _push(grafana, "--prometheus-url", "http://prom2:9090")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    calls = [(r.method, r.path) for r in grafana.requests]
    assert ("PUT", "/api/datasources/uid/framewatch-prometheus") in calls
    assert ("POST", "/api/datasources") not in calls
    assert ("POST", "/api/folders") not in calls
    assert grafana.datasources["framewatch-prometheus"]["url"] == "http://prom2:9090"
    assert len(grafana.dashboards) == len(DASHBOARDS)


def test_push_without_prometheus_url_leaves_datasources_alone(grafana: FakeGrafana) -> None:
    result = _push(grafana)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert not [r for r in grafana.requests if "datasources" in r.path]
    assert len(grafana.dashboards) == len(DASHBOARDS)


def test_missing_token_is_a_one_line_error(grafana: FakeGrafana) -> None:
    result = _push(grafana, token=None)
    assert result.exit_code != 0  # type: ignore[attr-defined]
    lines = result.output.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1
    assert "FW_TEST_GRAFANA_TOKEN" in lines[0]
    assert grafana.requests == []


def test_grafana_refusal_is_reported(grafana: FakeGrafana) -> None:
    grafana.handle = lambda method, path, body: (403, {"message": "permission denied"})  # type: ignore[method-assign]
    result = _push(grafana)
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert "403" in result.output  # type: ignore[attr-defined]
