"""Estimates from the labels: what the queue's random part allows one to say about the whole pool."""

import numpy as np
import pytest

from deepsad_core.loop.estimates import RoundSample, estimate_pool, round_sample, suggest_threshold
from deepsad_core.loop.query import Pick


def _pool(seed: int, n: int = 2000, share: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Scores where anomalies tend to score higher, with overlap (a fair part of them hides low)."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < share).astype(int)
    scores = np.exp(rng.normal(0, 1, n) + 1.5 * truth)
    return scores, truth


def _label_rounds(scores, truth, rounds: int, seed: int, batch: int = 10, random_part: int = 2):
    """A queue like the app's: the top unlabeled scores, then a few drawn at random; answered from truth."""
    rng = np.random.default_rng(seed)
    semi = np.zeros(len(scores), dtype=np.int64)
    samples, states = [], []
    for _ in range(rounds):
        unlabeled = np.flatnonzero(semi == 0)
        top = unlabeled[np.argsort(-scores[unlabeled])[: batch - random_part]]
        rest = np.setdiff1d(unlabeled, top)
        drawn = rng.choice(rest, random_part, replace=False)
        picks = [Pick(int(i), "most_anomalous", "") for i in top] + [Pick(int(i), "random", "") for i in drawn]
        samples.append(round_sample(semi != 0, picks))
        chosen = np.r_[top, drawn]
        semi[chosen] = np.where(truth[chosen] == 1, -1, 1)
        states.append((semi.copy(), list(samples)))
    return states


def test_nothing_is_estimated_before_a_random_pick_is_labeled():
    scores, _ = _pool(0)
    semi = np.zeros(len(scores), dtype=np.int64)
    semi[np.argsort(-scores)[:10]] = 1  # only the queue's deliberate picks are labeled
    design = RoundSample(np.ones(len(scores), bool), np.array([5, 6]))  # drawn, not yet answered
    assert estimate_pool(scores, 1.0, semi, []) is None
    assert estimate_pool(scores, 1.0, semi, [design]) is None
    assert suggest_threshold(scores, semi, [design]) is None


def test_the_random_picks_frame_leaves_out_what_was_known_or_picked_on_purpose():
    labeled = np.zeros(6, bool)
    labeled[0] = True
    design = round_sample(labeled, [Pick(1, "most_anomalous", ""), Pick(4, "random", "")])
    assert design.frame.tolist() == [False, False, True, True, True, True]
    assert design.random_picks.tolist() == [4]
    again = RoundSample.from_dict(design.to_dict(), 6)
    assert again.frame.tolist() == design.frame.tolist() and again.random_picks.tolist() == [4]


def test_the_intervals_hold_the_pool_truth_in_most_rounds():
    held = {"prevalence": [], "recall": []}
    errors = []
    for seed in range(30):
        scores, truth = _pool(seed)
        threshold = float(np.quantile(scores, 0.95))
        flagged = scores > threshold
        true = {"prevalence": truth.mean(), "recall": (flagged & (truth == 1)).sum() / truth.sum()}
        for semi, samples in _label_rounds(scores, truth, rounds=5, seed=seed)[1:]:  # from 20 labels on
            found = estimate_pool(scores, threshold, semi, samples, draws=1000)
            for name in held:
                held[name].append(getattr(found, name).holds(true[name]))
            errors.append(abs(found.recall.value - true["recall"]))
            assert found.flagged == flagged.sum() and found.random_labels == 2 * len(samples)
    assert np.mean(held["prevalence"]) >= 0.8, np.mean(held["prevalence"])
    assert np.mean(held["recall"]) >= 0.8, np.mean(held["recall"])
    assert np.mean(errors) <= 0.15, np.mean(errors)


def test_more_random_labels_narrow_the_interval():
    scores, truth = _pool(1)
    states = _label_rounds(scores, truth, rounds=12, seed=1, random_part=5)
    widths = []
    for semi, samples in (states[1], states[-1]):
        found = estimate_pool(scores, float(np.quantile(scores, 0.95)), semi, samples, draws=1000)
        widths.append(found.prevalence.high - found.prevalence.low)
    assert widths[1] < widths[0]


def test_the_suggested_threshold_flags_about_as_many_as_the_estimated_anomalies():
    scores, truth = _pool(2)
    semi, samples = _label_rounds(scores, truth, rounds=6, seed=2, random_part=4)[-1]
    found = suggest_threshold(scores, semi, samples)
    assert found is not None and found.threshold == pytest.approx(found.threshold)
    expected = found.prevalence.value * len(scores)
    assert 0.25 * expected <= found.flagged <= 4 * expected
