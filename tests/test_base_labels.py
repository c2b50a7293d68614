"""Labels to engine targets: the one place where "normal"/"anomalous" become +1/-1."""

import numpy as np
import pytest

from deepsad_core.base.labels import label_counts, semi_targets, training_rows
from deepsad_core.base.threshold import flag


def test_semi_targets_and_counts_from_labels():
    semi = semi_targets(6, {0: "normal", 4: "anomalous", 5: "anomalous"})
    np.testing.assert_array_equal(semi, [1, 0, 0, 0, -1, -1])
    assert label_counts(semi) == {"n_labels": 3, "labeled_normal": 1, "labeled_anomalous": 2}
    assert label_counts(semi_targets(3, {})) == {"n_labels": 0, "labeled_normal": 0, "labeled_anomalous": 0}
    with pytest.raises(ValueError, match="abnormal"):
        semi_targets(3, {1: "abnormal"})


def test_flag_is_strictly_above_the_threshold():
    np.testing.assert_array_equal(flag(np.array([0.5, 1.0, 1.5]), 1.0), [0, 0, 1])


def test_training_rows_keep_every_label_and_cap_the_unlabeled():
    rng = np.random.default_rng(0)
    semi = np.zeros(10_000, dtype=np.int64)
    semi[rng.choice(10_000, 40, replace=False)] = -1
    semi[:25] = 1
    rows = training_rows(semi, 1_000, np.random.default_rng(1))
    assert np.all(np.diff(rows) > 0)  # sorted, no repeats
    assert set(np.flatnonzero(semi != 0)) <= set(rows.tolist())
    assert (semi[rows] == 0).sum() == 1_000
    again = training_rows(semi, 1_000, np.random.default_rng(2))
    assert not np.array_equal(rows, again)  # each round draws afresh
    np.testing.assert_array_equal(training_rows(semi, 20_000, rng), np.arange(10_000))  # under the cap: all
    np.testing.assert_array_equal(training_rows(semi, None, rng), np.arange(10_000))


def test_training_rows_stratified_by_score_keep_the_rare_high_scores_in_proportion():
    scores = np.arange(100_000, dtype=np.float64)  # the top tenth is one stratum
    semi = np.zeros(100_000, dtype=np.int64)
    for seed in range(5):
        rows = training_rows(semi, 1_000, np.random.default_rng(seed), strata=scores)
        assert (scores[rows] >= 90_000).sum() == 100  # exactly its share, not 100 give or take 10
