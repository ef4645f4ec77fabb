"""`framewatch analyze FEED`: frame a feed file or URL without Kafka; errors are one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from framewatch.processing.analyst.cli import analyze
from tests.helpers.feed_server import FeedServer, Route
from tests.helpers.paths import ROOT
from tests.helpers.ports import refusing_port

FEEDS = ROOT / "tests" / "fixtures" / "feeds"
CODEBOOK = ROOT / "framewatch" / "sample" / "codebook.yaml"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer().start()
    yield srv
    srv.stop()


def run(feed: str, *extra: str, env: dict[str, str] | None = None) -> tuple[int, list[dict], str]:
    env = {"FRAMEWATCH_CLUSTER_NOVELTY_MAX": "0", **(env or {})}  # fake-embedder cosines are low
    result = CliRunner().invoke(
        analyze, [feed, "--codebook", str(CODEBOOK), "--embedder", "fake", *extra], env=env
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr if hasattr(result, "stderr") else result.output


def test_file_feed_prints_one_line_per_item_and_watch() -> None:
    code, lines, _ = run(str(FEEDS / "rss2_news.xml"))
    assert code == 0 and lines
    for line in lines:
        assert set(line) == {"id", "url", "title", "author", "published_at", "kind", "watch", "frame", "frames", "segments"}
        assert line["kind"] == "article" and line["url"] and line["title"] and line["published_at"].endswith("+00:00")
        assert line["watch"] == "social-credit"
        assert line["frame"] is None or line["frame"] in line["frames"]
        assert all({"text", "frame", "score"} <= set(s) for s in line["segments"])
    assert len({(line["id"], line["watch"]) for line in lines}) == len(lines)
    framed = [line for line in lines if line["frame"]]
    assert framed and abs(sum(framed[0]["frames"].values()) - 1.0) < 1e-6


@pytest.mark.parametrize(
    ("feed", "quoted"),
    [
        ("rss2_news.xml", "compliance tool for companies"),
        ("discourse_topic.rss", "compliance tool for companies"),
    ],
)
def test_quoted_text_appears_in_no_segment(feed: str, quoted: str) -> None:
    code, lines, _ = run(str(FEEDS / feed))
    assert code == 0 and lines
    assert all(quoted not in s["text"] for line in lines for s in line["segments"])


def test_feed_over_http(server: FeedServer) -> None:
    server.routes["/feed.xml"] = Route(body=(FEEDS / "xenforo_forum.rss").read_bytes())
    code, lines, _ = run(server.url("/feed.xml"))
    from_file = run(str(FEEDS / "xenforo_forum.rss"))[1]
    assert code == 0 and lines
    # item ids depend on the feed URL; everything else is the same as from the file
    assert [{**x, "id": None} for x in lines] == [{**x, "id": None} for x in from_file]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda s: s.routes.__setitem__("/f", Route(status=404, body=b"gone")), "http_error"),
        (lambda s: s.routes.__setitem__("/f", Route(body=b"<html><body>hello</body></html>", content_type="text/html")), "not_a_feed"),
        (lambda s: s.routes.__setitem__("/f", Route(body=b"")), "empty"),
        (lambda s: s.routes.__setitem__("/f", Route(body=b"x" * 50_000)), "too_large"),
        (lambda s: s.routes.__setitem__("/f", Route(body=(FEEDS / "rss2_news.xml").read_bytes(), delay_s=3.0)), "timeout"),
    ],
)
def test_unreadable_feed_is_one_error_line_and_exit_1(server: FeedServer, setup, reason: str) -> None:
    setup(server)
    result = CliRunner().invoke(
        analyze, [server.url("/f"), "--codebook", str(CODEBOOK), "--embedder", "fake"],
        env={"FRAMEWATCH_FETCH_MAX_BYTES": "20000", "FRAMEWATCH_FETCH_TIMEOUT_S": "1"},
    )
    assert result.exit_code == 1
    out = result.output.strip()
    assert len(out.splitlines()) == 1 and out.startswith("error:") and reason in out
    assert "Traceback" not in out


def test_missing_file_and_refused_connection(tmp_path: Path) -> None:
    with refusing_port() as port:
        for feed in (str(tmp_path / "nope.xml"), f"http://127.0.0.1:{port}/feed.xml"):
            result = CliRunner().invoke(analyze, [feed, "--codebook", str(CODEBOOK), "--embedder", "fake"])
            assert result.exit_code == 1 and result.output.startswith("error:")
            assert len(result.output.strip().splitlines()) == 1


def test_invalid_codebook_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "cb.yaml"
    bad.write_text("watches: []\n", encoding="utf-8")
    result = CliRunner().invoke(analyze, [str(FEEDS / "rss2_news.xml"), "--codebook", str(bad), "--embedder", "fake"])
    assert result.exit_code == 2 and "watches" in result.output
