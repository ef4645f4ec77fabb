"""`framewatch codebook promote` and `clusters`: an emergent cluster becomes a named frame, the
rest of the analyst's YAML untouched; errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from framewatch.processing.analyst.cli import clusters, promote
from framewatch.processing.framing.cluster import ClusterConfig, OnlineClusterer
from framewatch.processing.framing.codebook import load_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from tests.helpers.cluster_topics import DAY1, TOPICS

CODEBOOK = """\
# analysts' notes stay put
watches:
  - id: social-credit
    title: China's social credit system
    match:
      any: [social credit]
    frames:
      - id: dystopia
        label: Dystopia
        description: Surveillance and punishment.
      - id: trust   # a comment on the last frame
        label: Trust
        description: Consumer protection.
        examples:
          - Firms that cheat lose loans.

  - id: other
    title: Other
    frames:
      - {id: a, label: A, description: a}
      - {id: b, label: B, description: b}
"""


def test_promote_writes_a_named_frame_and_keeps_the_rest(tmp_path: Path) -> None:
    emb = FakeEmbedder()
    state = tmp_path / "state"
    c = OnlineClusterer(ClusterConfig(threshold=0.3, merge_threshold=0.95))
    ids = c.partial_fit(emb.embed(TOPICS["privacy"]), TOPICS["privacy"], DAY1)
    c.save(state / "clusters" / "social-credit")
    cb = tmp_path / "codebook.yaml"
    cb.write_text(CODEBOOK, encoding="utf-8")
    result = CliRunner().invoke(
        promote,
        ["social-credit", f"emergent:{ids[0]}", "--codebook", str(cb), "--id", "privacy",
         "--label", "Data privacy", "--state-dir", str(state)],
    )
    assert result.exit_code == 0, result.output
    text = cb.read_text(encoding="utf-8")
    assert text.startswith(CODEBOOK.split("\n\n")[0])  # everything before the insertion intact
    assert "# analysts' notes stay put" in text and "# a comment on the last frame" in text
    watch = load_codebook(cb).watch("social-credit")
    assert watch.frame_ids == ("dystopia", "trust", "privacy")
    new = watch.frames[-1]
    assert new.label == "Data privacy" and "privacy" in new.description
    assert set(new.examples) <= set(TOPICS["privacy"]) and new.examples
    assert load_codebook(cb).watch("other").frame_ids == ("a", "b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["social-credit", "emergent:99", "--id", "x", "--label", "X"], "no emergent cluster"),
        (["social-credit", "emergent:1", "--id", "trust", "--label", "X"], "already has a frame"),
        (["nope", "emergent:1", "--id", "x", "--label", "X"], "no watch"),
    ],
)
def test_promote_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    cb = tmp_path / "codebook.yaml"
    cb.write_text(CODEBOOK, encoding="utf-8")
    c = OnlineClusterer()
    c.partial_fit(FakeEmbedder().embed(["x y z"]), ["x y z"], DAY1)
    c.save(tmp_path / "clusters" / "social-credit")
    result = CliRunner().invoke(promote, [*args, "--codebook", str(cb), "--state-dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert cb.read_text(encoding="utf-8") == CODEBOOK


def test_clusters_command_lists_emergent_framings(tmp_path: Path) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.3, merge_threshold=0.95))
    c.partial_fit(FakeEmbedder().embed(TOPICS["privacy"]), TOPICS["privacy"], DAY1)
    c.save(tmp_path / "clusters" / "w")
    result = CliRunner().invoke(clusters, ["w", "--state-dir", str(tmp_path)])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 0 and rows and rows[0]["id"].startswith("emergent:")
    assert rows[0]["size"] >= 2 and rows[0]["representatives"]
