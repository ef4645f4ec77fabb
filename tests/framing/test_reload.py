"""A promoted model reaches a running processor without a restart: the trained artifact written
over the one in use frames the very next micro-batch, and each record names the head that decided
it. An artifact that does not load leaves the model in use (fake embedder, real broker)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from framewatch import contracts
from framewatch.contracts import FramedItem, RawItem
from framewatch.processing.framing.cli import run_processor
from framewatch.processing.framing.codebook import load_codebook
from framewatch.processing.framing.embed import FakeEmbedder
from framewatch.processing.framing.train import (
    LabelledText,
    TrainConfig,
    save_artifact,
    train_watch,
)
from framewatch.settings import DEAD_LETTERS, FRAMED_ITEMS, RAW_ITEMS, Settings
from tests.framing.test_cli import produce
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

CODEBOOK = """\
watches:
  - id: scs
    title: Social credit
    match: {any: [social credit]}
    frames:
      - {id: dystopia, label: Dystopia, description: cameras watch and punish citizens}
      - {id: trust, label: Trust, description: the blacklist protects consumers from fraud}
"""
TEXTS = {"dystopia": ["social credit cameras watch every citizen", "social credit surveillance state control",
                      "social credit cameras punish jaywalkers", "social credit state is watching you"],
         "trust": ["social credit protects consumers", "social credit stops loan fraud",
                   "social credit helps buyers trust sellers", "social credit blacklists cheating firms"]}
EMB = FakeEmbedder(64)


def artifact(path: Path, codebook: Path, swap: bool) -> Path:
    """A trained head; *swap* teaches it the opposite frames, so its decisions visibly change."""
    watch = load_codebook(codebook).watches[0]
    other = {"dystopia": "trust", "trust": "dystopia"}
    examples = [LabelledText(f"{f}{i}", t, (other[f] if swap else f,)) for f, ts in TEXTS.items() for i, t in enumerate(ts)]
    config = TrainConfig(finetune=False)
    result = train_watch(watch, examples, config=config, model_name=EMB.model_id, base_embedder=EMB)
    return save_artifact(path, result, watch=watch, codebook_version="v1", model_name=EMB.model_id, examples=examples, config=config)


def item(n: int) -> RawItem:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return RawItem(item_id=f"i{n}", source_id="src", feed_url="https://example.org/feed", kind="article",
                   url=f"https://example.org/{n}", title=None, author=None, published_at=now, fetched_at=now,
                   text=TEXTS["dystopia"][n])  # each its own text: a copy would take its original's decision


def test_a_promoted_model_frames_the_next_batch_without_a_restart(
    settings_factory: Callable[..., Settings], topic_factory: Callable[..., str], topic_reader: Callable[..., list],
    tmp_path: Path,
) -> None:
    settings = settings_factory(cluster_novelty_max=-1.0)
    for logical in (RAW_ITEMS, FRAMED_ITEMS, DEAD_LETTERS):
        topic_factory(settings, logical)
    codebook = tmp_path / "codebook.yaml"
    codebook.write_text(CODEBOOK)
    live = artifact(tmp_path / "live", codebook, swap=False)
    promoted = artifact(tmp_path / "promoted", codebook, swap=True)

    def framed() -> dict[str, FramedItem]:
        return {k.decode(): contracts.decode(FramedItem, v) for k, v in topic_reader(settings.topic(FRAMED_ITEMS)) if v}

    stop = threading.Event()
    runner = threading.Thread(target=run_processor, args=(settings, codebook, stop, EMB), kwargs={"artifact": live}, daemon=True)
    runner.start()
    try:
        produce(settings, [item(1)])
        wait_until("the first record", lambda: "scs:i1" in framed(), 60)
        (live / "manifest.json").write_text("{not json")  # a half-written promotion: ignored, model kept
        produce(settings, [item(2)])
        wait_until("the second record", lambda: "scs:i2" in framed(), 60)
        for name in ("head.npz", "examples.json", "manifest.json"):  # the promotion lands, manifest last
            shutil.copyfile(promoted / name, live / name)
        produce(settings, [item(3)])
        wait_until("the third record", lambda: "scs:i3" in framed(), 60)
    finally:
        stop.set()
        runner.join(timeout=30)
    records = framed()
    first, second, third = (records[f"scs:i{n}"] for n in (1, 2, 3))
    assert (first.frame, second.frame, third.frame) == ("dystopia", "dystopia", "trust")
    assert first.method == third.method == "trained"
    assert first.model_id.startswith(f"{EMB.model_id}+head:") and third.model_id != first.model_id
