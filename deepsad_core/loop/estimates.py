"""Honest estimates from the labels: the pool's anomaly share, and recall and precision at a threshold.

The labeled samples are not a fair sample of the pool: most of the queue picks the most anomalous,
the most uncertain and the most unusual on purpose. Its check samples are drawn at random with a
known chance each (:class:`~deepsad_core.loop.query.CheckSample`), and the estimates rest on them.
Each round's queue is read as a survey design: the samples labeled before it and its chosen picks
are outside the draw; the check draw came from everything else, the round's *frame*. When the expert
answers only some check samples of a queue (the first cards), those answered are a random part of
the draw (the queue shows them in random order), so each one's chance is scaled by the share answered.

Every count over the pool is split by score bands at the threshold: the flagged samples, then the
rest down to the median score, then the bottom half. In each band: the anomalies known now, plus the
unknown samples there times the band's anomaly rate. The rate is a Beta posterior from the check
labels that fall in the band, weighted by one over their chance (their effective number, as in survey
intervals for small samples, Korn and Graubard 1998), on top of a prior from a logistic model of
"anomalous" on the log-score fitted on every label (the queue chooses by score, so given the score
the choice biases it little), worth :data:`MODEL_PRIOR` check labels. Check samples are placed in
the bands by the detector's held-out scores: its own score of a labeled sample has learned the
label. Intervals are percentiles of
draws from the posterior predictive: a rate per band, then a whole number of unknown anomalies from
it (so "none missed" is a possible answer).

Before any check sample is answered there is no fair sample; :func:`label_free_prevalence` then says
from the score distribution alone what share of the pool lies far above the bulk, as a rough guide.

Assumptions, in words: the expert's answers to the check samples do not depend on which ones they
are, and labels given outside the queue (the map's lasso) count as known for later rounds only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from deepsad_core.base.threshold import ThresholdChoice, choose_threshold, contamination_threshold, flag
from deepsad_core.loop.query import SAMPLED_PARTS

__all__ = [
    "THRESHOLD_METHODS",
    "Estimate",
    "PoolEstimates",
    "RoundSample",
    "choose_round_threshold",
    "estimate_curve",
    "estimate_pool",
    "label_free_prevalence",
    "round_sample",
    "suggest_threshold",
]

LEVEL = 0.9
DRAWS = 4000
MODEL_PRIOR = 2.0  # the score model's rate in a band is worth this many check labels
REFERENCE_SHARE = 0.1  # the anomaly share that bounds the threshold search is estimated at this flagged share
FEW_BELOW = 5  # below this many check labels under the threshold, the recall's upper end is not shown


@dataclass(frozen=True)
class RoundSample:
    """What one round's queue drew at random: its frame (bool mask over the pool), its check picks and
    each one's inclusion probability."""

    frame: np.ndarray
    picks: np.ndarray
    inclusion: np.ndarray

    def to_dict(self) -> dict:
        return {
            "frame": np.flatnonzero(self.frame).tolist(),
            "picks": self.picks.tolist(),
            "inclusion": self.inclusion.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, n: int) -> RoundSample:
        frame = np.zeros(n, dtype=bool)
        frame[np.asarray(data["frame"], dtype=np.int64)] = True
        picks = np.asarray(data.get("picks", data.get("random_picks", [])), dtype=np.int64)
        # designs saved before check samples drew their random picks uniformly from the frame
        inclusion = data.get("inclusion") or [len(picks) / max(int(frame.sum()), 1)] * len(picks)
        return cls(frame, picks, np.asarray(inclusion, dtype=np.float64))


def round_sample(labeled: np.ndarray, picks: list) -> RoundSample:
    """The design of a queue: ``labeled`` is the labeled mask when it was made, ``picks`` its picks."""
    frame = ~np.asarray(labeled, dtype=bool)
    frame[[p.index for p in picks if p.strategy not in SAMPLED_PARTS]] = False
    drawn = [p for p in picks if p.strategy in SAMPLED_PARTS]
    return RoundSample(
        frame,
        np.asarray([p.index for p in drawn], dtype=np.int64),
        np.asarray([p.inclusion for p in drawn], dtype=np.float64),
    )


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
    """Estimates over the whole pool at one threshold, and what they rest on.

    ``recall_lower`` is the recall's one-sided lower bound at the same level; with fewer than
    :data:`FEW_BELOW` check labels below the threshold (``check_below``) it is all that the pages show
    of the recall: its upper end rests on too little.
    """

    threshold: float
    flagged: int  # known exactly: the scores are
    prevalence: Estimate  # anomalous share of the pool
    recall: Estimate  # anomalies flagged / anomalies
    precision: Estimate  # anomalies flagged / flagged
    f1: Estimate  # of the flags against the truth over the pool
    recall_lower: float
    check_labels: int  # answered check samples the estimates rest on
    check_below: int  # of them, those below the threshold
    rounds: int  # rounds whose check samples were answered
    level: float = LEVEL

    @property
    def recall_is_bounded(self) -> bool:
        """Whether enough check labels lie below the threshold for the recall's two-sided interval."""
        return self.check_below >= FEW_BELOW

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


def _check_labels(y: np.ndarray, samples: list[RoundSample]) -> tuple[Checks, int]:
    """The answered check samples of every round, each with its weight (one over its chance of being
    drawn and answered), and the number of rounds they come from."""
    index, weight, rounds = [], [], 0
    for s in samples:
        answered = y[s.picks] >= 0 if len(s.picks) else np.zeros(0, dtype=bool)
        if not answered.any():
            continue
        share = answered.mean()  # a random part of the draw was answered
        index.append(s.picks[answered])
        weight.append(1.0 / np.maximum(s.inclusion[answered] * share, 1e-12))
        rounds += 1
    if not index:
        return Checks(np.zeros(0, dtype=np.int64), np.zeros(0)), 0
    return Checks(np.concatenate(index), np.concatenate(weight)), rounds


@dataclass(frozen=True)
class Checks:
    """The answered check samples: pool index and weight."""

    index: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class _Basis:
    """What the estimates rest on, whatever the threshold."""

    known: np.ndarray  # 1 labeled anomalous, 0 labeled normal, -1 unknown
    held_out: np.ndarray  # the scores that place check samples
    checks: Checks
    rounds: int
    rate: np.ndarray  # the score model's p(anomalous), per sample


def _bands(scores: np.ndarray, threshold: float) -> list[tuple[float, float, bool]]:
    """Bands of the scores: the flagged ones, the rest down to the median score, the bottom half (empty
    bands left out), as (above, up to, flagged)."""
    median = min(float(np.median(scores)), threshold)
    parts = [(threshold, np.inf, True), (median, threshold, False), (-np.inf, median, False)]
    return [(lo, hi, f) for lo, hi, f in parts if hi > lo]


def _draw_counts(
    scores: np.ndarray, threshold: float, basis: _Basis, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draws of (anomalies flagged, anomalies not flagged) over the pool: the known ones as the scores
    flag them, the unknown ones band by band from the check labels, placed by their held-out scores."""
    y, checks, rate = basis.known, basis.checks, basis.rate
    rng = np.random.default_rng(seed)
    flagged = scores > threshold
    caught = np.full(draws, float((flagged & (y == 1)).sum()))
    missed = np.full(draws, float((~flagged & (y == 1)).sum()))
    checked = basis.held_out[checks.index]
    for lo, hi, is_flagged in _bands(scores, threshold):
        unknown = (scores > lo) & (scores <= hi) & (y < 0)
        inside = (checked > lo) & (checked <= hi)
        w, hits = checks.weight[inside], y[checks.index[inside]]
        n_eff = w.sum() ** 2 / (w**2).sum() if len(w) else 0.0
        share = float(w @ hits / w.sum()) if len(w) else 0.0
        prior = float(np.clip(rate[unknown].mean(), 1e-3, 1 - 1e-3)) if unknown.any() else 0.5
        drawn = rng.beta(n_eff * share + MODEL_PRIOR * prior, n_eff * (1 - share) + MODEL_PRIOR * (1 - prior), draws)
        found = rng.binomial(int(unknown.sum()), drawn)  # none at all is a possible answer
        if is_flagged:
            caught += found
        else:
            missed += found
    return caught, missed


def _estimate(draws: np.ndarray, level: float) -> Estimate:
    tail = (1 - level) / 2 * 100
    if not np.isfinite(draws).any():
        return Estimate(float("nan"), float("nan"), float("nan"))
    low, mid, high = np.nanpercentile(draws, [tail, 50, 100 - tail])
    return Estimate(float(mid), float(low), float(high))


def _at(scores: np.ndarray, threshold: float, basis: _Basis, level: float, draws: int, seed: int) -> PoolEstimates:
    flagged = flag(scores, threshold).astype(bool)
    caught, missed = _draw_counts(scores, threshold, basis, draws, seed)
    anomalies = caught + missed
    n_flagged = int(flagged.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(anomalies > 0, caught / anomalies, np.nan)
        precision = np.minimum(caught / n_flagged, 1.0) if n_flagged else np.full_like(caught, np.nan)
        f1 = 2 * caught / (n_flagged + anomalies)
    return PoolEstimates(
        threshold=float(threshold),
        flagged=n_flagged,
        prevalence=_estimate(anomalies / len(flagged), level),
        recall=_estimate(recall, level),
        precision=_estimate(precision, level),
        f1=_estimate(f1, level),
        recall_lower=float(np.nanpercentile(recall, (1 - level) * 100)) if np.isfinite(recall).any() else np.nan,
        check_labels=len(basis.checks.index),
        check_below=int((basis.held_out[basis.checks.index] <= threshold).sum()),
        rounds=basis.rounds,
        level=level,
    )


def _basis(
    scores: np.ndarray, semi_targets: np.ndarray, samples: list[RoundSample], held_out: np.ndarray | None
) -> _Basis | None:
    """The known labels, the held-out scores, the answered check samples and the score model, or
    ``None`` without any answered check sample (nothing fair can be said)."""
    y = _known(np.asarray(semi_targets))
    held_out = np.asarray(scores if held_out is None else held_out, dtype=np.float64)
    checks, rounds = _check_labels(y, samples)
    if not len(checks.index):
        return None
    log_scores = np.log(np.maximum(held_out, 1e-300))
    return _Basis(y, held_out, checks, rounds, _rate_model(log_scores, y, np.flatnonzero(y >= 0)))


def estimate_pool(
    scores: np.ndarray,
    threshold: float,
    semi_targets: np.ndarray,
    samples: list[RoundSample],
    held_out: np.ndarray | None = None,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> PoolEstimates | None:
    """Prevalence, and recall, precision and F1 at ``threshold``, with ``level`` intervals; ``None``
    until some round's check samples are answered (without them nothing fair can be said).

    ``held_out``: the detector's score of each sample from a view that had not seen its label (see
    :attr:`~deepsad_core.detectors.contract.TrainableDetector.held_out_scores_`); a detector learns its
    labels, so its own scores of labeled samples would carry the answers into the estimate. Without
    it, ``scores``."""
    basis = _basis(scores, semi_targets, samples, held_out)
    if basis is None:
        return None
    return _at(np.asarray(scores), threshold, basis, level, draws, seed)


def estimate_curve(
    scores: np.ndarray, semi_targets: np.ndarray, samples: list[RoundSample], thresholds: np.ndarray,
    held_out: np.ndarray | None = None, draws: int = 400,
) -> list[PoolEstimates] | None:  # fmt: skip
    """:func:`estimate_pool` at each of ``thresholds`` (fewer draws each: a chart, not a decision);
    ``None`` until some check samples are answered."""
    scores = np.asarray(scores)
    basis = _basis(scores, semi_targets, samples, held_out)
    if basis is None:
        return None
    return [_at(scores, float(t), basis, LEVEL, draws, 0) for t in thresholds]


def suggest_threshold(
    scores: np.ndarray, semi_targets: np.ndarray, samples: list[RoundSample], held_out: np.ndarray | None = None,
    candidates: int = 25,
) -> PoolEstimates | None:  # fmt: skip
    """The threshold with the best estimated F1 over the pool among those that flag a share of it
    within the anomaly share's interval, with its estimates (``held_out`` as in :func:`estimate_pool`);
    ``None`` until some check samples are answered.

    The interval guards the F1 search: with few check labels its curve is noisy, and its best point
    can flag a small fraction (or a multiple) of the anomalies the same labels say there are."""
    scores = np.asarray(scores)
    basis = _basis(scores, semi_targets, samples, held_out)
    if basis is None:
        return None
    share = _at(scores, float(np.quantile(scores, 1 - REFERENCE_SHARE)), basis, LEVEL, 2000, 0).prevalence
    shares = np.linspace(max(share.low, 1 / len(scores)), max(share.high, 1 / len(scores)), candidates)
    best, best_f1 = None, -1.0
    for t in np.unique(np.quantile(scores, 1 - shares)):
        found = _at(scores, float(t), basis, LEVEL, 400, 0)
        if np.isfinite(found.f1.value) and found.f1.value > best_f1:
            best, best_f1 = float(t), found.f1.value
    return _at(scores, best, basis, LEVEL, DRAWS, 0) if best is not None else None


def label_free_prevalence(scores: np.ndarray) -> Estimate:
    """A rough share of anomalies from the scores alone, for before any check sample is answered: the
    share of log-scores beyond the upper quartile plus 1.5 interquartile ranges (Tukey's fence), with
    the fences at 3 and at 1 interquartile ranges as its range."""
    log_scores = np.log(np.maximum(np.asarray(scores, dtype=np.float64), 1e-300))
    q1, q3 = np.quantile(log_scores, [0.25, 0.75])
    spread = max(q3 - q1, 1e-12)
    low, mid, high = ((log_scores > q3 + k * spread).mean() for k in (3.0, 1.5, 1.0))
    return Estimate(float(mid), float(low), float(high))


# "estimated_f1": the best F1 estimated over the pool (the default); "best_f1" and "target_fpr": from
# the labeled samples alone (deepsad_core.base.threshold), which the queue chose and which flatter.
THRESHOLD_METHODS = ("estimated_f1", "best_f1", "target_fpr")
GUESS_RANGE = (0.005, 0.3)  # the label-free guess of the anomaly share is kept within this


def choose_round_threshold(
    scores: np.ndarray, semi_targets: np.ndarray, samples: list[RoundSample], method: str = "estimated_f1",
    contamination: float = 0.05, held_out: np.ndarray | None = None,
) -> tuple[ThresholdChoice, PoolEstimates | None]:  # fmt: skip
    """A round's threshold and the estimates there. ``estimated_f1``: the best estimated F1 over the
    pool once check samples are answered; before, the label-free share of samples far above the bulk
    (:func:`label_free_prevalence`). The other methods choose from the labels alone."""
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method must be one of {', '.join(THRESHOLD_METHODS)}; got {method!r}")
    if method != "estimated_f1":
        choice = choose_threshold(scores, semi_targets, method=method, contamination=contamination)
        return choice, estimate_pool(scores, choice.value, semi_targets, samples, held_out)
    found = suggest_threshold(scores, semi_targets, samples, held_out)
    if found is not None:
        f1 = found.f1
        detail = (
            f"best estimated F1 {f1.value:.2f} ({f1.low:.2f}-{f1.high:.2f}) over all samples, from "
            f"{found.check_labels} answered check samples; flags {found.flagged / len(scores):.1%}"
        )
        return ThresholdChoice(found.threshold, "estimated_f1", detail), found
    guess = float(np.clip(label_free_prevalence(scores).value, *GUESS_RANGE))
    value = contamination_threshold(scores, guess)
    detail = (
        f"no check sample answered yet: flags the {guess:.1%} of samples whose score lies far above the "
        "bulk (a rough guide from the scores alone)"
    )
    return ThresholdChoice(value, "score_distribution", detail), None
