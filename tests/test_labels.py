"""Labels to engine targets: the one place where "normal"/"anomalous" become +1/-1."""

import numpy as np
import pytest

from deepsad_core.labels import label_counts, semi_targets
from deepsad_core.threshold import flag


def test_semi_targets_and_counts_from_labels():
    semi = semi_targets(6, {0: "normal", 4: "anomalous", 5: "anomalous"})
    np.testing.assert_array_equal(semi, [1, 0, 0, 0, -1, -1])
    assert label_counts(semi) == {"n_labels": 3, "labeled_normal": 1, "labeled_anomalous": 2}
    assert label_counts(semi_targets(3, {})) == {"n_labels": 0, "labeled_normal": 0, "labeled_anomalous": 0}
    with pytest.raises(ValueError, match="abnormal"):
        semi_targets(3, {1: "abnormal"})


def test_flag_is_strictly_above_the_threshold():
    np.testing.assert_array_equal(flag(np.array([0.5, 1.0, 1.5]), 1.0), [0, 0, 1])
