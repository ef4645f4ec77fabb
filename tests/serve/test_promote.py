"""POST /clusters/{id}/promote with a codebook configured: the analyst's promote writes a new version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from framewatch.processing.framing.cluster import ClusterConfig, OnlineClusterer
from framewatch.processing.framing.codebook import load_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from tests.analyst.test_promote import CODEBOOK
from tests.helpers.cluster_topics import DAY1, TOPICS
from tests.serve import lake as fixture_lake
from tests.serve.conftest import Running


def test_promote_writes_a_new_codebook_version(serve_factory: Callable[..., Running], tmp_path: Path) -> None:
    codebook = tmp_path / "codebook.yaml"
    codebook.write_text(CODEBOOK, encoding="utf-8")
    before = load_codebook(codebook).version
    api = serve_factory(serve_codebook_path=codebook)
    clusterer = OnlineClusterer(ClusterConfig(threshold=0.3, merge_threshold=0.95))
    ids = clusterer.partial_fit(FakeEmbedder().embed(TOPICS["privacy"]), TOPICS["privacy"], DAY1)
    clusterer.save(api.ctx.settings.state_dir / "processing" / "clusters" / "social-credit")
    cluster = f"emergent:{ids[0]}"
    row = fixture_lake.framed_row(90, "social-credit", api.lake.now, 900, cluster=cluster)
    fixture_lake.write(api.lake.root, "framed_items", [row], fixture_lake.FRAMED_SCHEMA, "published_at", "b-0-900-900.parquet")
    with api.client() as admin:
        analyst = admin.post("/tokens", json={"name": "ana", "role": "analyst"}).json()["token"]
    with api.client(analyst) as c:
        response = c.post(f"/clusters/{cluster}/promote", json={"watch": "social-credit", "frame_id": "privacy",
                                                              "label": "Data privacy"})
        again = c.post(f"/clusters/{cluster}/promote", json={"watch": "social-credit", "frame_id": "privacy",
                                                           "label": "Data privacy"})
    assert response.status_code == 200, response.text
    body = response.json()
    after = load_codebook(codebook)
    assert body["mode"] == "codebook" and body["codebook_version"] == after.version != before
    assert after.watch("social-credit").frame_ids == ("dystopia", "trust", "privacy")
    assert again.status_code == 400 and "already has a frame" in again.json()["detail"]
