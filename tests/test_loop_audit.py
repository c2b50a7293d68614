"""The label audit and the stopping hint."""

import numpy as np

from deepsad_core.loop.audit import StopHint, audit_labels, stop_hint


def test_the_audit_puts_first_the_labels_the_scores_contradict():
    scores = np.arange(100.0)  # sample i scores i
    semi = np.zeros(100, dtype=np.int64)
    semi[[95, 96, 97]] = -1  # anomalous, and scored so
    semi[[10, 20]] = 1  # normal, and scored so
    semi[99] = 1  # labeled normal, yet the top score
    semi[2] = -1  # labeled anomalous, yet near the bottom
    doubts = audit_labels(scores, semi, k=3)
    assert [d.index for d in doubts] == [99, 2, 20]
    assert doubts[0].reason == "labeled normal, yet it scores above 100% of the samples"
    assert doubts[1].reason == "labeled anomalous, yet 98% of the samples score above it"


def test_the_other_labels_overrule_a_layout_that_cannot_tell():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    X[:40, 0] += 4  # the anomalies sit apart on the first feature
    semi = np.zeros(200, dtype=np.int64)
    semi[:20] = -1
    semi[100:120] = 1
    semi[5] = 1  # a mistake: one of the anomalies labeled normal
    flat = np.zeros(200)  # scores that say nothing
    assert audit_labels(flat, semi, k=1, X=X)[0].index == 5


def test_the_stop_hint_fires_only_when_nothing_moves():
    rng = np.random.default_rng(1)
    before = rng.random(500)
    answered = {int(i): ("anomalous" if before[i] > 0.9 else "normal") for i in rng.choice(500, 10, replace=False)}
    steady = stop_hint(before, before + rng.normal(0, 1e-4, 500), 0.9, answered, 0.60, 0.62)
    assert steady.stop and steady.predicted == 1.0 and steady.rank_correlation > 0.99
    assert steady.describe().startswith("More labels no longer change the detector much")
    moved = stop_hint(before, rng.random(500), 0.9, answered, 0.60, 0.62)
    assert not moved.stop and "still changing" in moved.describe()
    assert not stop_hint(before, before, 0.9, answered, 0.30, 0.62).stop  # the estimated recall jumped
    assert stop_hint(None, before, None, {}) == StopHint(None, None, None, False)  # round 0: nothing to compare
