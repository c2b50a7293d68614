import numpy as np
import pytest

from deepsad_core.base.threshold import choose_threshold, tradeoff_curve


def test_without_labels_the_contamination_share_is_flagged():
    scores = np.arange(100.0)
    choice = choose_threshold(scores, np.zeros(100, int), contamination=0.1)
    assert choice.method == "contamination" and (scores > choice.value).sum() == 10
    assert "no labels yet" in choice.detail


def test_labels_of_one_kind_fall_back_to_contamination():
    semi = np.zeros(100, int)
    semi[:5] = 1
    assert choose_threshold(np.arange(100.0), semi).method == "contamination"


def test_best_f1_separates_labeled_anomalies_from_labeled_normals():
    scores = np.arange(100.0)
    semi = np.zeros(100, int)
    semi[[10, 20, 30, 55]] = 1  # labeled normals
    semi[[60, 70, 80]] = -1  # labeled anomalies
    choice = choose_threshold(scores, semi)
    assert choice.method == "best_f1" and 55 <= choice.value < 60
    flagged = scores[semi != 0] > choice.value
    assert flagged.tolist() == [False, False, False, False, True, True, True]
    assert "F1 1.00" in choice.detail


def test_target_fpr_on_labeled_normals():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    semi = np.zeros(1000, int)
    semi[:200] = 1
    semi[200:210] = -1
    choice = choose_threshold(scores, semi, method="target_fpr", target_fpr=0.1)
    assert (scores[:200] > choice.value).mean() == pytest.approx(0.1, abs=0.01)


def test_tradeoff_curve_columns_and_monotone_flag_count():
    scores = np.arange(50.0)
    semi = np.zeros(50, int)
    semi[:5], semi[45:] = 1, -1
    curve = tradeoff_curve(scores, semi, n_points=20)
    assert list(curve.columns) == ["threshold", "flagged", "precision", "recall", "f1", "labeled_fpr"]
    assert (np.diff(curve["flagged"]) <= 0).all()
    assert curve["recall"].iloc[0] == 1.0 and curve["f1"].max() == 1.0
    assert tradeoff_curve(scores, np.zeros(50, int))["precision"].isna().all()


def test_the_curve_holds_the_chosen_threshold_and_every_step_of_the_labels():
    scores = np.concatenate([np.random.default_rng(0).random(300), [5.0, 7.0, 9.0]])  # a sparse far tail
    semi = np.zeros(len(scores), int)
    semi[[300, 302]] = -1  # the far anomalies
    semi[[0, 1, 301]] = 1  # a far labeled normal between them
    choice = choose_threshold(scores, semi)
    curve = tradeoff_curve(scores, semi, n_points=20, include=[6.0])
    assert 6.0 in set(curve["threshold"])  # in the sparse tail, between the last two quantiles
    at_choice = curve[curve.threshold == choice.value]  # a step of the labels, so on the curve
    assert len(at_choice) == 1 and at_choice["f1"].item() == pytest.approx(max(curve["f1"]))
    assert "F1 0.80" in choice.detail and at_choice["flagged"].item() == 3
    # just below each labeled score, the label-based figures take their next value
    for labeled_score in scores[semi != 0]:
        assert np.nextafter(labeled_score, -np.inf) in set(curve["threshold"])
    assert curve["recall"].tolist() == sorted(curve["recall"], reverse=True)
