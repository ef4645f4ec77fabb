"""Emergent framings: stable cluster ids (across days and restarts), c-TF-IDF labels, promote."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from framewatch.processing.framing.cluster import (
    ClusterConfig,
    OnlineClusterer,
    class_tfidf,
    cluster_stream,
    parse_emergent_id,
)
from framewatch.processing.framing.embed import FakeEmbedder
from tests.helpers.cluster_topics import DAY1, TOPICS


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def blob(center: np.ndarray, n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return unit(center[None, :] + noise * rng.standard_normal((n, center.size)))


@pytest.fixture
def centers() -> np.ndarray:
    return unit(np.eye(3, 32, dtype=np.float32) + 0.01)


def test_points_near_a_centroid_share_its_id(centers: np.ndarray) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.7))
    ids = c.partial_fit(np.vstack([blob(centers[0], 5, 1), blob(centers[1], 5, 2)]), ["a"] * 5 + ["b"] * 5, DAY1)
    assert len(set(ids[:5])) == 1 and len(set(ids[5:])) == 1 and ids[0] != ids[5]
    assert c.predict(blob(centers[1], 2, 3)) == [ids[5], ids[5]]
    assert c.predict(unit(np.ones((1, 32)) * -1)) == [None]


def test_ids_stable_across_days_and_save_load(tmp_path: Path, centers: np.ndarray) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.7))
    day1 = c.partial_fit(np.vstack([blob(centers[0], 4, 1), blob(centers[1], 4, 2)]), ["x"] * 8, DAY1)
    c.save(tmp_path / "w")
    restored = OnlineClusterer.load(tmp_path / "w", ClusterConfig(threshold=0.7))
    # the next day (after a restart) the same topics keep their ids; a new topic gets a fresh id
    day2 = restored.partial_fit(
        np.vstack([blob(centers[1], 3, 5), blob(centers[0], 3, 6), blob(centers[2], 3, 7)]),
        ["y"] * 9, DAY1 + timedelta(days=1),
    )
    assert day2[:3] == [day1[4]] * 3 and day2[3:6] == [day1[0]] * 3
    assert day2[6] not in (day1[0], day1[4]) and day2[6] > max(day1)


def test_ids_never_recycled_after_retirement(centers: np.ndarray) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.7, half_life_days=1.0, retire_weight=0.1))
    first = c.partial_fit(blob(centers[0], 1, 1), ["old"], DAY1)[0]
    later = c.partial_fit(blob(centers[1], 1, 2), ["new"], DAY1 + timedelta(days=30))[0]
    assert first not in c.clusters  # faded away
    again = c.partial_fit(blob(centers[0], 1, 3), ["old again"], DAY1 + timedelta(days=30))[0]
    assert len({first, later, again}) == 3


def test_close_centroids_merge_into_the_older_id(centers: np.ndarray) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.9, merge_threshold=0.8))
    a = unit(centers[0] + 0.0)
    b = unit(centers[0] + 0.6 * centers[1])  # sim(a, b) ~ 0.86: separate leaders, then merged
    ids = c.partial_fit(np.vstack([a, b]), ["a", "b"], DAY1)
    assert ids == [1, 1] or (ids == [1, 2] and c.resolve(2) == 1 and list(c.clusters) == [1])


def test_class_tfidf_prefers_distinctive_words() -> None:
    from collections import Counter

    labels = class_tfidf(
        {1: Counter({"credit": 5, "privacy": 4, "data": 3}), 2: Counter({"credit": 5, "tourism": 4, "hotel": 3})}, 2
    )
    assert labels[1] == ["privacy", "data"] and labels[2] == ["tourism", "hotel"]


def test_summaries_have_keyword_labels_representatives_and_size() -> None:
    emb = FakeEmbedder()
    texts = TOPICS["privacy"] + TOPICS["tourism"]
    c = OnlineClusterer(ClusterConfig(threshold=0.3, merge_threshold=0.95))
    ids = c.partial_fit(emb.embed(texts), texts, DAY1)
    assert len(set(ids)) >= 2
    by_id = {s.id: s for s in c.summaries()}
    privacy = by_id[f"emergent:{ids[0]}"]
    assert privacy.size >= 2 and privacy.representatives[0] in texts
    assert {"privacy", "personal", "records", "data"} & set(privacy.keywords)
    assert not {"tourists", "hotels"} & set(privacy.keywords)


def test_cluster_stream_groups_similar_texts() -> None:
    texts = TOPICS["privacy"] + TOPICS["tourism"]
    labels = cluster_stream(texts, FakeEmbedder(), ClusterConfig(threshold=0.3))
    assert all(label.startswith("emergent:") for label in labels)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    assert cluster_stream([], FakeEmbedder()) == []


def test_parse_emergent_id() -> None:
    assert parse_emergent_id("emergent:12") == 12 and parse_emergent_id("7") == 7
    with pytest.raises(ValueError):
        parse_emergent_id("dystopia")


def stories(centers: np.ndarray, per: int, seed: int, noise: float = 0.25) -> tuple[np.ndarray, list[int]]:
    """*per* noisy vectors around each center, interleaved like a feed."""
    rng = np.random.default_rng(seed)
    truth = [int(k) for k in rng.permutation(np.repeat(np.arange(len(centers)), per))]
    vectors = unit(centers[truth] + noise * rng.standard_normal((len(truth), centers.shape[1])) / np.sqrt(centers.shape[1]) * 4)
    return vectors, truth


def test_calibrated_thresholds_follow_the_similarity_distribution() -> None:
    from framewatch.processing.framing.cluster import calibrated_thresholds

    rng = np.random.default_rng(0)
    spread = unit(rng.standard_normal((300, 64)))  # near-orthogonal: low cosines
    tight = unit(rng.standard_normal((1, 64)) + 0.3 * rng.standard_normal((300, 64)))  # one topic: high cosines
    low_join, low_merge = calibrated_thresholds(spread, 4.0, 6.0)
    high_join, high_merge = calibrated_thresholds(tight, 4.0, 6.0)
    assert 0.3 <= low_join < high_join <= 0.75
    assert low_merge >= low_join + 0.1 and high_merge <= 0.9


def test_calibrated_clusterer_finds_stories_where_a_fixed_cut_fragments_them(tmp_path: Path) -> None:
    from sklearn.metrics import adjusted_rand_score

    centers = unit(np.random.default_rng(5).standard_normal((12, 48)))
    vectors, truth = stories(centers, 25, 1, noise=0.12)
    texts = [f"t{i}" for i in range(len(truth))]

    class Fixed:
        model_id, dim = "fixed", 48

        def embed(self, _texts: object) -> np.ndarray:
            return vectors

    calibrated = cluster_stream(texts, Fixed())
    fixed = cluster_stream(texts, Fixed(), ClusterConfig(threshold=0.9, merge_threshold=0.95))
    assert len(set(calibrated)) <= 1.5 * len(centers) < len(set(fixed))
    assert adjusted_rand_score(truth, calibrated) > adjusted_rand_score(truth, fixed)
    c = OnlineClusterer(ClusterConfig(calibrate=True))
    c.partial_fit(vectors, texts, DAY1)
    c.save(tmp_path / "w")
    restored = OnlineClusterer.load(tmp_path / "w", ClusterConfig(calibrate=True))
    assert restored.calibrated and (restored.threshold, restored.merge_threshold) == (c.threshold, c.merge_threshold)


def test_small_stale_clusters_retire_and_merged_ids_point_to_their_survivor(centers: np.ndarray) -> None:
    c = OnlineClusterer(ClusterConfig(threshold=0.9, merge_threshold=0.8, stale_days=2.0, stale_size=2, half_life_days=1000))
    big = c.partial_fit(blob(centers[0], 5, 1), ["big"] * 5, DAY1)[0]
    small = c.partial_fit(blob(centers[1], 1, 2), ["small"], DAY1)[0]
    c.partial_fit(blob(centers[0], 1, 3), ["big again"], DAY1 + timedelta(days=3))
    assert big in c.clusters and small not in c.clusters  # the fragment went stale; the story stays
    a = unit(centers[2] + 0.0)
    b = unit(centers[2] + 0.6 * centers[1])
    ids = c.partial_fit(np.vstack([a, b]), ["a", "b"], DAY1 + timedelta(days=3))
    assert len({c.resolve(i) for i in ids}) == 1 and c.resolve(max(ids)) == min(ids)
