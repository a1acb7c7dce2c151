"""model.py without TensorFlow: "unknown" thresholds, prototypes and similarity (milliseconds)."""

import numpy as np
import pytest

from model import CustomModel, choose_unknown_thresholds, nearest_same_class_similarities, pick_prototypes, unit_rows
from params import UNKNOWN


def test_nearest_same_class_similarity_ignores_the_clip_itself_and_other_classes():
    embeddings = np.array([[1, 0], [1, 0.1], [0, 1], [5, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 2])
    similarities = nearest_same_class_similarities(embeddings, labels)
    assert similarities[0] == pytest.approx(similarities[1]) and 0.99 < similarities[0] < 1.0
    assert np.isnan(similarities[2]) and np.isnan(similarities[3])  # alone in their class


def test_thresholds_keep_most_held_out_clips_and_are_capped():
    names = ["bell", "horn", "quiet"]
    probabilities = {"bell": list(np.linspace(0.5, 1.0, 101)), "horn": [0.99, 1.0]}
    similarities = {"bell": list(np.linspace(0.8, 1.0, 101)), "horn": [float("nan")]}
    chosen = choose_unknown_thresholds(names, probabilities, similarities)
    assert chosen["probability"]["bell"] == pytest.approx(min(0.5 + 0.5 * UNKNOWN.quantile, UNKNOWN.max_probability))
    assert chosen["probability"]["horn"] == UNKNOWN.max_probability  # two confident clips don't make it strict
    assert chosen["similarity"]["bell"] == pytest.approx(0.8 + 0.2 * UNKNOWN.quantile - UNKNOWN.similarity_margin, abs=1e-4)
    assert "horn" not in chosen["similarity"] and "quiet" not in chosen["probability"]


def test_prototypes_are_capped_per_class_and_unit_length():
    embeddings = np.random.default_rng(0).standard_normal((UNKNOWN.max_prototypes + 50, 4)).astype(np.float32)
    labels = np.array([0] * (UNKNOWN.max_prototypes + 40) + [1] * 10)
    units, kept = pick_prototypes(embeddings, labels, seed=0)
    assert (kept == 0).sum() == UNKNOWN.max_prototypes and (kept == 1).sum() == 10
    assert np.allclose(np.linalg.norm(units, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(pick_prototypes(embeddings, labels, seed=0)[0], units)  # reproducible


def test_known_and_unknown_decisions():
    prototypes = unit_rows(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    model = CustomModel(head=None, class_names=["a", "b"], meta={
        "unknown": {"probability": {"a": 0.6}, "similarity": {"a": 0.9, "b": 0.9}}},
        prototypes=prototypes, prototype_labels=np.array([0, 1]))
    close_to_a = np.array([[1, 0.1, 0], [1, -0.1, 0]], dtype=np.float32)
    assert model.similarity(close_to_a, 0) > 0.99 and model.similarity(close_to_a, 1) < 0.1
    assert model.is_known("a", 0.7, 0.95)
    assert not model.is_known("a", 0.5, 0.95)       # unsure between classes
    assert not model.is_known("a", 0.99, 0.5)       # sure, but unlike anything trained on
    assert model.is_known("b", 0.51, 0.95)          # no probability threshold for b
    old = CustomModel(head=None, class_names=["a", "b"], meta={})
    assert old.similarity(close_to_a, 0) is None and old.is_known("a", 0.01, None)


def test_a_silent_live_window_is_background_without_running_yamnet():
    levelled = {"clip": {"views": 8, "level_dbfs": -20.0}}
    with_background = CustomModel(head=None, class_names=["background", "doorbell"], meta=levelled)
    assert with_background.window_probabilities(np.zeros(15600, np.float32), yamnet=None).tolist() == [1.0, 0.0]
    dither = np.random.default_rng(0).standard_normal(15600).astype(np.float32) * 1e-5  # -100 dBFS
    only_sounds = CustomModel(head=None, class_names=["doorbell", "glass"], meta=levelled)
    assert only_sounds.window_probabilities(dither, yamnet=None).tolist() == [0.0, 0.0]
