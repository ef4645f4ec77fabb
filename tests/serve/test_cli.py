"""`framewatch serve` as a process: prints the workbench's and the API's URLs at start, answers on
them, and serves its metrics and health on the metrics port like every component."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx

from tests.serve import lake as fixture_lake


def test_serve_prints_its_url_and_answers(tmp_path: Path) -> None:
    fixture_lake.build(tmp_path / "lake")
    token = uuid.uuid4().hex
    env = {**os.environ, "FRAMEWATCH_SINK_URL": str(tmp_path / "lake"), "FRAMEWATCH_STATE_DIR": str(tmp_path / "state"),
           "FRAMEWATCH_SERVE_PORT": "0", "FRAMEWATCH_SERVE_ADMIN_TOKEN": token, "FRAMEWATCH_METRICS_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "framewatch", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        first = lines.get(timeout=60)
        assert first.startswith("framewatch workbench at http://127.0.0.1:") and first.rstrip().endswith("/ui/"), first
        second = lines.get(timeout=10)
        assert second.startswith("framewatch API at http://127.0.0.1:"), second
        url = second.split()[3]
        metrics_port = second.rsplit(":", 1)[1].split("/")[0]
        headers = {"Authorization": f"Bearer {token}"}
        body = None
        for _ in range(200):  # the socket is bound before the URL is printed; uvicorn may still be starting
            try:
                body = httpx.get(f"{url}/watches", headers=headers, timeout=5).json()
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        assert body is not None and [w["id"] for w in body["watches"]] == ["china-scs", "climate", "odd:watch"]
        assert httpx.get(f"{url}/no/such/{uuid.uuid4().hex}", headers=headers, timeout=5).status_code == 404
        health = f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{health}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{health}/readyz", timeout=5).status_code == 200
        scraped = httpx.get(f"{health}/metrics", timeout=5).text
        # labelled by route template, so strangers' paths cannot grow the label set
        assert 'framewatch_api_requests_total{method="GET",route="/api/v1/watches",status="200"} 1.0' in scraped
        assert 'framewatch_api_requests_total{method="GET",route="unmatched",status="404"} 1.0' in scraped
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert token not in err and token not in first + second
