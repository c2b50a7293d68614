"""Estimates from the labels: what the queue's check samples allow one to say about the whole pool."""

import numpy as np
import pytest

from deepsad_core.loop.estimates import (
    RoundSample,
    choose_round_threshold,
    estimate_pool,
    label_free_prevalence,
    round_sample,
    suggest_threshold,
)
from deepsad_core.loop.query import CheckSample, Pick, QueryPool


def _pool(seed: int, n: int = 2000, share: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Scores where anomalies tend to score higher, with overlap (a fair part of them hides low)."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < share).astype(int)
    scores = np.exp(rng.normal(0, 1, n) + 1.5 * truth)
    return scores, truth


def _label_rounds(scores, truth, rounds: int, seed: int, batch: int = 10, checks: int = 4):
    """A queue like the app's: the top unlabeled scores, then check samples; answered from truth."""
    rng = np.random.default_rng(seed)
    semi = np.zeros(len(scores), dtype=np.int64)
    samples, states = [], []
    for _ in range(rounds):
        unlabeled = np.flatnonzero(semi == 0)
        top = unlabeled[np.argsort(-scores[unlabeled])[: batch - checks]]
        taken = semi != 0
        taken[top] = True
        drawn = CheckSample().query(QueryPool(scores, taken, 1.0), checks, rng)
        picks = [Pick(int(i), "most_anomalous", "") for i in top] + drawn
        samples.append(round_sample(semi != 0, picks))
        chosen = np.r_[top, [p.index for p in drawn]].astype(int)
        semi[chosen] = np.where(truth[chosen] == 1, -1, 1)
        states.append((semi.copy(), list(samples)))
    return states


def test_nothing_is_estimated_before_a_check_sample_is_answered():
    scores, _ = _pool(0)
    semi = np.zeros(len(scores), dtype=np.int64)
    semi[np.argsort(-scores)[:10]] = 1  # only the queue's deliberate picks are labeled
    design = RoundSample(np.ones(len(scores), bool), np.array([5, 6]), np.array([0.01, 0.01]))  # not answered
    assert estimate_pool(scores, 1.0, semi, []) is None
    assert estimate_pool(scores, 1.0, semi, [design]) is None
    assert suggest_threshold(scores, semi, [design]) is None
    choice, found = choose_round_threshold(scores, semi, [design])
    assert found is None and choice.method == "score_distribution" and "no check sample answered" in choice.detail


def test_the_frame_leaves_out_what_was_known_or_picked_on_purpose_and_keeps_each_chance():
    labeled = np.zeros(6, bool)
    labeled[0] = True
    design = round_sample(labeled, [Pick(1, "most_anomalous", ""), Pick(4, "check", "", 0.25)])
    assert design.frame.tolist() == [False, False, True, True, True, True]
    assert design.picks.tolist() == [4] and design.inclusion.tolist() == [0.25]
    again = RoundSample.from_dict(design.to_dict(), 6)
    assert again.frame.tolist() == design.frame.tolist() and again.inclusion.tolist() == [0.25]
    # a design saved before check samples: its random picks were drawn uniformly from the frame
    old = RoundSample.from_dict({"frame": [2, 3, 4, 5], "random_picks": [4]}, 6)
    assert old.picks.tolist() == [4] and old.inclusion.tolist() == [0.25]


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
            assert found.flagged == flagged.sum() and found.check_labels == 4 * len(samples)
    assert np.mean(held["prevalence"]) >= 0.85, np.mean(held["prevalence"])
    assert np.mean(held["recall"]) >= 0.85, np.mean(held["recall"])
    # a fifth of these anomalies hide among the lowest half of the scores, where 20 to 50 labels find
    # few: the interval says so (wide), and its middle is no sharper than that
    assert np.mean(errors) <= 0.3, np.mean(errors)


def test_more_check_labels_narrow_the_interval():
    scores, truth = _pool(1)
    states = _label_rounds(scores, truth, rounds=12, seed=1, checks=5)
    widths = []
    for semi, samples in (states[1], states[-1]):
        found = estimate_pool(scores, float(np.quantile(scores, 0.95)), semi, samples, draws=1000)
        widths.append(found.prevalence.high - found.prevalence.low)
    assert widths[1] < widths[0]


def test_the_suggested_threshold_flags_about_as_many_as_the_estimated_anomalies():
    scores, truth = _pool(2)
    semi, samples = _label_rounds(scores, truth, rounds=6, seed=2)[-1]
    found = suggest_threshold(scores, semi, samples)
    assert found is not None and found.threshold == pytest.approx(found.threshold)
    expected = found.prevalence.value * len(scores)
    assert 0.25 * expected <= found.flagged <= 4 * expected


def test_check_samples_are_placed_by_their_held_out_scores_not_by_what_their_label_taught():
    """A detector learns its labels: a check anomaly found low scores high once labeled. Placed by that
    score it would say the low scores hold no anomalies; placed by its held-out score it does not."""
    scores, truth = _pool(3)
    semi, samples = _label_rounds(scores, truth, rounds=5, seed=3)[-1]
    threshold = float(np.quantile(scores, 0.95))
    checked = np.concatenate([s.picks for s in samples])
    taught = scores.copy()
    low_anomalies = checked[(truth[checked] == 1) & (scores[checked] <= threshold)]
    assert len(low_anomalies)  # the draw found anomalies below the threshold
    taught[low_anomalies] = scores.max() * 2  # what training on their labels does to their own scores
    honest = estimate_pool(taught, threshold, semi, samples, held_out=scores)
    fooled = estimate_pool(taught, threshold, semi, samples)
    assert honest.recall.value < fooled.recall.value
    true_recall = ((taught > threshold) & (truth == 1)).sum() / truth.sum()
    assert honest.recall.holds(true_recall)


def test_the_label_free_share_finds_a_clear_outlying_group():
    rng = np.random.default_rng(0)
    scores = np.exp(np.r_[rng.normal(0, 0.3, 950), rng.normal(4, 0.3, 50)])
    guess = label_free_prevalence(scores)
    assert guess.low <= 0.05 <= guess.high and 0.03 <= guess.value <= 0.08


def test_the_round_threshold_comes_from_the_estimates_once_check_samples_are_answered():
    scores, truth = _pool(4)
    semi, samples = _label_rounds(scores, truth, rounds=3, seed=4)[-1]
    choice, found = choose_round_threshold(scores, semi, samples)
    assert choice.method == "estimated_f1" and found is not None and choice.value == found.threshold
    assert "answered check samples" in choice.detail
    by_labels, _ = choose_round_threshold(scores, semi, samples, method="best_f1")
    assert by_labels.method == "best_f1"
    with pytest.raises(ValueError, match="threshold method must be one of"):
        choose_round_threshold(scores, semi, samples, method="guess")
