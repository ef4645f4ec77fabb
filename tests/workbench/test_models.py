"""The Models page on the real app under uvicorn (fake embedder, real broker for the labels): an
analyst trains a candidate from the labels, sees it beside the model in use while and after it
trains, and promotes it into the processor's artifact folder; a viewer may look but not act."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest

from framewatch.processing.analyst.compare import artifact_model_id, train_candidate
from framewatch.processing.framing.codebook import parse_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.train import LabelledText, read_manifest
from framewatch.processing.workbench import models
from framewatch.timeutil import utcnow
from tests.helpers.waiting import wait_until
from tests.serve.conftest import kafka_or_skip
from tests.serve.lake import FRAMES
from tests.workbench.conftest import Workbench, csrf_of, serve_workbench

CODEBOOK = """\
watches:
  - id: china-scs
    title: Social credit in China
    frames:
      - {id: surveillance, label: Surveillance, description: the state watching, examples: [the state and its plans]}
      - {id: trade, label: Trade, description: goods and money, examples: [the market and its plans]}
      - {id: military, label: Military, description: arms and armies, examples: [the money and its plans]}
"""
LABELLED = range(15)  # segment 0 of china-scs items 0..14 ("passage N about FRAME"), labelled with its frame


def passage(n: int) -> str:
    return "The Zanzibar channel surveillance" if n == 12 else f"passage {n} about {FRAMES[n % 3]}"


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Workbench]:
    """The app with a codebook, a model path holding a model that learnt the frames the wrong way
    round, and the fake embedder."""
    codebook = tmp_path / "codebook.yaml"
    codebook.write_text(CODEBOOK)
    watch = parse_codebook(CODEBOOK, str(codebook)).watches[0]
    wrong = [LabelledText(f"w{n}", passage(n), (FRAMES[(n + 1) % 3],)) for n in LABELLED]
    train_candidate(wrong, watch, FakeEmbedder(64), tmp_path / "live", codebook_version="v0")
    yield from serve_workbench(tmp_path, serve_codebook_path=codebook, serve_artifact_path=tmp_path / "live",
                               model_name="fake")


def label_passages(wb: Workbench) -> None:
    headers = {"Authorization": f"Bearer {wb.tokens['analyst']}"}
    with httpx.Client(base_url=wb.root, headers=headers, timeout=30) as api:
        for n in LABELLED:
            resp = api.put(f"/api/v1/items/china-scs:item{n:03d}/segments/0/label", json={"frame": FRAMES[n % 3]})
            assert resp.status_code == 200, resp.text


def finished(client: httpx.Client) -> str:
    """The Models page once training has finished (or failed), else ""."""
    html = client.get("/ui/models").text
    return html if "candidate-model" in html or "failed" in html else ""


def figures(html: str) -> dict[str, Any]:
    """The model ids and macro-F1s the page shows."""
    def one(pattern: str) -> str:
        found = re.search(pattern, html)
        assert found, pattern
        return unescape(found.group(1))

    return {"current": one(r'class="current-model">([^<]+)<'), "candidate": one(r'class="candidate-model">([^<]+)<'),
            "current_f1": float(one(r'id="current-macro">([0-9.]+)<')),
            "candidate_f1": float(one(r'id="candidate-macro">([0-9.]+)<')),
            "rows": re.findall(r'class="frame-row" data-frame="([^"]+)"', html)}


def test_an_analyst_trains_compares_and_promotes_and_the_processor_path_holds_the_candidate(
    bench: Workbench, monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka_or_skip()
    live = Path(str(bench.ctx.settings.serve_artifact_path))
    in_use = artifact_model_id(read_manifest(live))
    label_passages(bench)
    gate, real = threading.Event(), models.compare_models
    monkeypatch.setattr(models, "compare_models", lambda *a, **k: gate.wait(30) and real(*a, **k))
    with bench.client("analyst") as c:
        token = csrf_of(c.get("/ui/models").text)
        assert c.post("/ui/models/train", data={"watch": "china-scs"}).status_code == 403  # no CSRF token
        started = c.post("/ui/models/train", data={"csrf": token, "watch": "china-scs"})
        assert started.status_code == 303 and "notice=" in started.headers["location"]
        running = c.get("/ui/models").text
        assert '<meta http-equiv="refresh"' in running and "Training for china-scs" in running
        busy = c.post("/ui/models/train", data={"csrf": token, "watch": "china-scs"})
        assert "being+trained" in busy.headers["location"]  # one training at a time
        assert "wait until it finishes" in c.get(busy.headers["location"]).text
        gate.set()
        html = wait_until("the comparison", lambda: finished(c), 60)
        shown = figures(html)
        assert "failed" not in html and '<meta http-equiv="refresh"' not in html
        assert shown["current"] == in_use and shown["candidate"].startswith("fake-64+head:") and shown["candidate"] != in_use
        assert shown["rows"] == ["surveillance", "trade", "military"]
        assert f"{len(LABELLED)} labelled passages" in html
        assert shown["candidate_f1"] > shown["current_f1"]
        stale = c.post("/ui/models/promote", data={"csrf": token, "candidate": "fake-64+head:00000000"})
        assert "changed+since" in stale.headers["location"] and artifact_model_id(read_manifest(live)) == in_use
        done = c.post("/ui/models/promote", data={"csrf": token, "candidate": shown["candidate"]})
        assert done.status_code == 303 and "promoted" in done.headers["location"]
        after = c.get("/ui/models").text
    assert artifact_model_id(read_manifest(live)) == shown["candidate"]  # what the processor reloads
    assert not [p.name for p in live.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert re.search(r"Last promoted: <code>" + re.escape(shown["candidate"]) + r"</code> for china-scs\s+by <strong>ana</strong>", after)
    assert f'class="live-model">{shown["candidate"]}<' in after
    assert "This candidate is the model in use." in after and 'action="/ui/models/promote"' not in after
    (entry,) = [json.loads(line) for line in (live / "promotions.jsonl").read_text().splitlines()]
    assert entry["model_id"] == shown["candidate"] and entry["by"] == "ana" and entry["replaced"] == in_use
    # the record outlives the server: a new desk on the same folder shows it
    again = models.ModelDesk(bench.ctx.settings, utcnow).promotion
    assert again is not None and again.model_id == shown["candidate"] and again.by == "ana"


def test_a_viewer_sees_the_page_but_cannot_train_or_promote(bench: Workbench) -> None:
    with bench.client("viewer") as v:
        html = v.get("/ui/models").text
        assert 'data-role="viewer"' in html and 'action="/ui/models/train"' not in html
        token = csrf_of(html)
        assert v.post("/ui/models/train", data={"csrf": token, "watch": "china-scs"}).status_code == 403
        assert v.post("/ui/models/promote", data={"csrf": token, "candidate": "x"}).status_code == 403


def test_without_a_model_path_the_page_says_how_to_set_one(workbench: Workbench) -> None:
    with workbench.client("analyst") as c:
        html = c.get("/ui/models").text
        token = csrf_of(html)
        assert "FRAMEWATCH_SERVE_ARTIFACT_PATH" in html and "FRAMEWATCH_SERVE_CODEBOOK_PATH" in html
        refused = c.post("/ui/models/train", data={"csrf": token})
        assert "No+codebook+is+configured" in refused.headers["location"]
        assert "no finished candidate" in c.get(c.post("/ui/models/promote", data={"csrf": token}).headers["location"]).text
