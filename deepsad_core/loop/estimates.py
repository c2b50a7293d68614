"""Honest estimates from the labels: the pool's anomaly share, and recall and precision at a threshold.

The labeled samples are not a fair sample of the pool: the queue picks the most anomalous, the
most uncertain and the most unusual on purpose. Only its random part is a probability sample. Each
round's queue is read as a survey design: the samples labeled before the queue was made and the
other parts' picks are known exactly (inclusion probability 1); the random part drew uniformly from
everything else, the round's *frame* (inclusion probability picks / frame size).

Every count over the pool is split by whether the current detector flags a sample (its scores are
known for all): known anomalies there, plus the unknown samples there times the anomaly rate of that
part. Each part's rate comes from every round's random picks that fall in it (a Beta posterior): a
random pick drawn from a frame speaks for the samples still unknown, as they were all in it. In the
part not flagged the prior is Jeffreys'; a model of "anomalous" from the score, fitted on the queue's
labels, puts too few anomalies among low scores, which the queue rarely labels. Few random picks land
in the flagged part, whose samples the queue mostly labels on purpose; there the prior is a logistic
model of "anomalous" on the log-score, fitted on every label (the queue chooses by score, so given
the score the choice does not bias it), worth two random picks. Rounds are combined with weights
that do not look at the labels (random picks / unknown samples squared). Intervals are percentiles
of draws from the posterior predictive: a rate from each posterior, then a whole number of unknown
anomalies from it (so "none missed" is a possible answer).

Assumptions, in words: the expert answers the random picks that were queued (an unanswered one is
treated as not drawn), the random part's near-duplicate filter is ignored, and labels given outside
the queue (the map's lasso) count as known for later rounds only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from deepsad_core.base.threshold import flag

__all__ = ["Estimate", "PoolEstimates", "RoundSample", "estimate_pool", "round_sample", "suggest_threshold"]

LEVEL = 0.9
DRAWS = 4000
MODEL_PRIOR = 2.0  # the score model's rate, worth two random picks, in the flagged part (few random picks land there)
JEFFREYS = 1.0  # Beta(1/2, 1/2) in the part not flagged: its random picks decide (the score model misjudges it)


@dataclass(frozen=True)
class RoundSample:
    """What one round's queue drew at random: its frame (bool mask over the pool) and its random picks."""

    frame: np.ndarray
    random_picks: np.ndarray

    def to_dict(self) -> dict:
        return {"frame": np.flatnonzero(self.frame).tolist(), "random_picks": self.random_picks.tolist()}

    @classmethod
    def from_dict(cls, data: dict, n: int) -> RoundSample:
        frame = np.zeros(n, dtype=bool)
        frame[np.asarray(data["frame"], dtype=np.int64)] = True
        return cls(frame, np.asarray(data["random_picks"], dtype=np.int64))


def round_sample(labeled: np.ndarray, picks: list) -> RoundSample:
    """The design of a queue: ``labeled`` is the labeled mask when it was made, ``picks`` its picks."""
    frame = ~np.asarray(labeled, dtype=bool)
    frame[[p.index for p in picks if p.strategy != "random"]] = False
    return RoundSample(frame, np.asarray([p.index for p in picks if p.strategy == "random"], dtype=np.int64))


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its interval (``level``, two-sided)."""

    value: float
    low: float
    high: float

    def holds(self, truth: float) -> bool:
        return self.low <= truth <= self.high


@dataclass(frozen=True)
class PoolEstimates:
    """Estimates over the whole pool at one threshold, and what they rest on."""

    threshold: float
    flagged: int  # known exactly: the scores are
    prevalence: Estimate  # anomalous share of the pool
    recall: Estimate  # anomalies flagged / anomalies
    precision: Estimate  # anomalies flagged / flagged
    random_labels: int  # labeled random picks the estimates rest on
    rounds: int  # rounds whose random picks were labeled
    level: float = LEVEL

    def to_dict(self) -> dict:
        return asdict(self)


def _known(semi_targets: np.ndarray) -> np.ndarray:
    """1 labeled anomalous, 0 labeled normal, -1 unlabeled."""
    y = np.full(len(semi_targets), -1, dtype=np.int8)
    y[semi_targets == 1] = 0
    y[semi_targets == -1] = 1
    return y


def _rate_model(log_scores: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """p(anomalous | score) for every sample, from a logistic fit on the labeled ``rows`` (one class
    only: its share, shrunk towards a half by one pseudo-label)."""
    target = y[rows]
    if target.min() == target.max():
        return np.full(len(log_scores), (target.sum() + 0.5) / (len(target) + 1.0))
    z = ((log_scores - log_scores.mean()) / max(log_scores.std(), 1e-12))[:, None]
    model = LogisticRegression(C=1.0).fit(z[rows], target)
    return model.predict_proba(z)[:, 1]


def _draw_counts(
    y: np.ndarray, flagged: np.ndarray, samples: list[RoundSample], rate: np.ndarray, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Draws of (anomalies flagged, anomalies not flagged) over the pool, combined over rounds."""
    rng = np.random.default_rng(seed)
    answered = [s.random_picks[y[s.random_picks] >= 0] for s in samples]
    if not any(len(a) for a in answered):
        return None
    known_parts, unknown_sizes, weights = [], [], []
    for s, picks in zip(samples, answered, strict=True):
        if len(picks) == 0:
            continue
        known = (y >= 0) & ~s.frame  # labeled before the queue, or picked by its other parts
        known_parts.append([(known & part & (y == 1)).sum() for part in (flagged, ~flagged)])
        unknown_sizes.append([(~known & part).sum() for part in (flagged, ~flagged)])
        weights.append(len(picks) / max((~known).sum(), 1) ** 2)
    w = np.asarray(weights) / np.sum(weights)
    known_total = w @ np.asarray(known_parts, dtype=np.float64)  # (flagged, not flagged)
    unknown_total = w @ np.asarray(unknown_sizes, dtype=np.float64)
    # one anomaly rate per part, from every round's random picks together (each round's frame holds
    # the current unknown samples, so its picks speak for them)
    pooled = np.concatenate(answered)
    unknown_flagged = (y < 0) & flagged
    model_rate = float(np.clip(rate[unknown_flagged].mean(), 1e-3, 1 - 1e-3)) if unknown_flagged.any() else 0.5
    totals = []
    for k, (part, prior, strength) in enumerate(((flagged, model_rate, MODEL_PRIOR), (~flagged, 0.5, JEFFREYS))):
        sampled = pooled[part[pooled]]
        a, m = y[sampled].sum(), len(sampled)
        drawn = rng.beta(a + strength * prior, m - a + strength * (1 - prior), draws)
        # the unknown anomalies are a whole number: none at all is a possible answer
        totals.append(known_total[k] + rng.binomial(round(unknown_total[k]), drawn))
    return totals[0], totals[1], len(pooled), len(weights)


def _estimate(draws: np.ndarray, level: float) -> Estimate:
    tail = (1 - level) / 2 * 100
    if not np.isfinite(draws).any():
        return Estimate(float("nan"), float("nan"), float("nan"))
    low, mid, high = np.nanpercentile(draws, [tail, 50, 100 - tail])
    return Estimate(float(mid), float(low), float(high))


def _at(
    scores: np.ndarray, threshold: float, y: np.ndarray, samples: list[RoundSample], rate: np.ndarray, level: float,
    draws: int, seed: int,
) -> PoolEstimates | None:  # fmt: skip
    flagged = flag(scores, threshold).astype(bool)
    drawn = _draw_counts(y, flagged, samples, rate, draws, seed)
    if drawn is None:
        return None
    caught, missed, used, rounds = drawn
    anomalies = caught + missed
    n_flagged = int(flagged.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(anomalies > 0, caught / anomalies, np.nan)
        precision = caught / n_flagged if n_flagged else np.full_like(caught, np.nan)
    return PoolEstimates(
        threshold=float(threshold),
        flagged=n_flagged,
        prevalence=_estimate(anomalies / len(flagged), level),
        recall=_estimate(recall, level),
        precision=_estimate(np.minimum(precision, 1.0), level),
        random_labels=used,
        rounds=rounds,
        level=level,
    )


def _rate_for(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    log_scores = np.log(np.maximum(np.asarray(scores, dtype=np.float64), 1e-12))
    return _rate_model(log_scores, y, np.flatnonzero(y >= 0)) if (y >= 0).any() else np.full(len(y), 0.5)


def estimate_pool(
    scores: np.ndarray,
    threshold: float,
    semi_targets: np.ndarray,
    samples: list[RoundSample],
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> PoolEstimates | None:
    """Prevalence, and recall and precision at ``threshold``, with ``level`` intervals; ``None`` until
    some round's random picks are labeled (without them nothing fair can be said)."""
    y = _known(np.asarray(semi_targets))
    return _at(scores, threshold, y, samples, _rate_for(scores, y), level, draws, seed)


def suggest_threshold(
    scores: np.ndarray, semi_targets: np.ndarray, samples: list[RoundSample], candidates: int = 100
) -> PoolEstimates | None:
    """The threshold with the best estimated F1 over the pool (among the upper score quantiles), with
    its estimates; ``None`` until some random picks are labeled."""
    scores = np.asarray(scores)
    y = _known(np.asarray(semi_targets))
    rate = _rate_for(scores, y)
    best, best_f1 = None, -1.0
    for t in np.unique(np.quantile(scores, np.linspace(0.5, 0.999, candidates))):
        found = _at(scores, float(t), y, samples, rate, LEVEL, 500, 0)
        if found is None:
            return None
        expected = found.prevalence.value * len(scores)
        caught = found.recall.value * expected
        f1 = 2 * caught / (found.flagged + expected) if found.flagged else 0.0
        if np.isfinite(f1) and f1 > best_f1:
            best, best_f1 = float(t), f1
    return _at(scores, best, y, samples, rate, LEVEL, DRAWS, 0) if best is not None else None
