"""The fusion of the members' scores: scales, label weights, and a bounded score that keeps the ranking."""

import numpy as np
import pytest

from deepsad_core.detectors.fusion import (
    bounded,
    fuse,
    fusion_weights,
    label_weights,
    labeled_auc,
    robust_scale,
    teacher_scores,
)


def test_fusion_weighs_members_by_their_label_auc():
    assert label_weights({"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.3, "e": None}, power=2) == {
        "a": 1.0, "b": 0.25, "c": 0.0, "d": 0.0,
    }  # fmt: skip
    z = {"a": np.array([0.0, 2.0]), "b": np.array([4.0, 0.0])}
    # the weighted mean, bounded: 3:1 for a gives (0*3 + 4*1)/4 = 1 and (2*3 + 0)/4 = 1.5
    np.testing.assert_allclose(fuse(z, {"a": 3.0, "b": 1.0}), np.exp(10 * np.tanh(np.array([1.0, 1.5]) / 10)))
    # format-1 models keep the exp of the mean
    np.testing.assert_allclose(fuse(z, {"a": 3.0, "b": 1.0}, "exp"), np.exp([1.0, 1.5]))
    # a member with a higher z raises the fused score (the sign), the heavier member dominates (the weight)
    assert fuse(z, {"a": 3.0, "b": 1.0})[1] > fuse(z, {"a": 3.0, "b": 1.0})[0]
    assert fuse(z, {"a": 1.0, "b": 3.0})[1] < fuse(z, {"a": 1.0, "b": 3.0})[0]


def test_labeled_auc_counts_anomalies_as_positives_and_needs_both_kinds():
    semi = np.array([-1, -1, 1, 1, 0])
    assert labeled_auc(np.array([5.0, 4.0, 1.0, 2.0, 9.0]), semi) == 1.0
    assert labeled_auc(np.array([1.0, 2.0, 5.0, 4.0, 0.0]), semi) == 0.0
    assert labeled_auc(np.ones(5), np.array([-1, -1, 0, 0, 0])) is None


def test_robust_scale_is_median_and_iqr():
    median, iqr = robust_scale(np.arange(101.0))
    assert (median, iqr) == (50.0, 50.0)


def test_scores_are_bounded_and_ranked_as_the_weighted_mean():
    mean = np.array([-1e6, -50.0, -2.0, 0.0, 1.0, 3.0, 40.0, 80.0, 1e6])
    scores = bounded(mean)
    assert np.all(np.diff(scores) > 0)  # strictly increasing: the ranking of the mean is kept
    assert scores.min() >= np.exp(-10) and scores.max() <= np.exp(10)
    np.testing.assert_allclose(np.log(scores[3:6]), mean[3:6], rtol=0.03)  # log(score) ~ m near thresholds


def test_deep_sad_is_taught_by_the_other_members_weighed_by_the_labels():
    z = {"iforest": np.array([3.0, 0.0, 1.0]), "supervised": np.array([0.0, 3.0, 1.0]), "deepsad": np.full(3, 9.0)}
    # the labels trust the forest alone: it teaches, Deep SAD's own view never does
    aucs = {"iforest": 1.0, "supervised": 0.5, "deepsad": 1.0}
    np.testing.assert_allclose(teacher_scores(z, aucs, 2.0), z["iforest"])
    aucs = {"iforest": 0.75, "supervised": 1.0, "deepsad": 0.0}  # weights 0.25 and 1
    np.testing.assert_allclose(teacher_scores(z, aucs, 2.0), (0.25 * z["iforest"] + z["supervised"]) / 1.25)
    # before the labels rank anyone, the members other than Deep SAD add up
    np.testing.assert_allclose(teacher_scores(z, {}, 2.0), z["iforest"] + z["supervised"])


def test_fusion_weights_come_from_the_labels_once_two_anomalies_are_labeled_else_the_prior():
    prior = (("iforest", 1.0), ("knn", 0.0), ("deepsad", 0.15))
    aucs = {"iforest": 0.9, "knn": 0.4, "deepsad": 0.75}
    two = np.array([-1, -1, 1, 0])
    assert fusion_weights(aucs, two, 2.0, prior) == pytest.approx({"iforest": 0.64, "deepsad": 0.25})
    assert fusion_weights(aucs, np.array([-1, 1, 1, 0]), 2.0, prior) == {"iforest": 1.0, "deepsad": 0.15}
    assert fusion_weights({"iforest": 0.5, "knn": 0.2}, two, 2.0, prior) == {"iforest": 1.0, "deepsad": 0.15}
