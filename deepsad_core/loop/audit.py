"""Label audit and stopping hint: which labels the detector doubts, and whether more labels still help.

Both read what a round already has (scores, thresholds, labels): no training, no I/O.

The audit ranks the labels by how strongly three views disagree with them: a label-free score (a
labeled normal that scores above most samples, a labeled anomaly below most; for the ensemble its
IsolationForest and kNN members, a detector's ``label_free_scores``, since a detector trained on a
wrong label has learned it), a classifier of the other labels (out of fold), and the labels of the nearest
labeled neighbours.

The stopping hint says when labels stop changing the detector: the scores' rank correlation with the
previous round's, the share of the last queue's answers the previous detector already predicted, and
the change in the estimated recall (:mod:`deepsad_core.loop.estimates`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata, spearmanr

from deepsad_core.base.threshold import flag
from deepsad_core.detectors.supervised import out_of_fold

__all__ = ["Doubt", "StopHint", "audit_labels", "stop_hint"]

STEADY_RANKS = 0.98  # scores this rank-correlated with the last round's: the detector hardly moved
PREDICTED_ANSWERS = 0.9  # this share of the last queue's answers was already predicted
STEADY_RECALL = 0.05  # the estimated recall moved less than this


@dataclass(frozen=True)
class Doubt:
    """A label the detector disagrees with: ``rank`` is the share of samples scoring below it."""

    index: int
    label: str
    rank: float

    @property
    def reason(self) -> str:
        if self.label == "normal":
            return f"labeled normal, yet it scores above {self.rank:.0%} of the samples"
        return f"labeled anomalous, yet {1 - self.rank:.0%} of the samples score above it"


def _out_of_fold_anomalous(X: np.ndarray, semi_targets: np.ndarray, labeled: np.ndarray) -> np.ndarray | None:
    """For each labeled sample, a classifier's probability of "anomalous" learned from the other labels
    (five folds): what the rest of the expert's labels say about this one."""
    flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)[labeled]
    return out_of_fold(flat, semi_targets[labeled] == -1, method="predict_proba")


def _neighbours_anomalous(X: np.ndarray, semi_targets: np.ndarray, labeled: np.ndarray, k: int = 5) -> np.ndarray:
    """For each labeled sample, the share of its ``k`` nearest other labeled samples labeled anomalous."""
    from sklearn.neighbors import NearestNeighbors

    flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)[labeled]
    k = min(k, len(labeled) - 1)
    # k + 1 neighbours, then each sample's own row dropped (a tree, not an n x n matrix: bulk labels
    # from the map can number thousands)
    _, nearest = NearestNeighbors(n_neighbors=k + 1).fit(flat).kneighbors(flat)
    keep = nearest != np.arange(len(nearest))[:, None]
    keep[keep.all(axis=1), -1] = False  # exact duplicates may push a row's own index past k + 1
    others = nearest[keep].reshape(len(nearest), k)
    return (semi_targets[labeled][others] == -1).mean(axis=1)


def audit_labels(scores: np.ndarray, semi_targets: np.ndarray, k: int = 10, X: np.ndarray | None = None) -> list[Doubt]:
    """The ``k`` labels that ``scores`` (higher = more anomalous) most disagree with, most doubtful first.

    With ``X`` (the model input), each label is also judged by the other labels: a classifier of them
    (out of fold), and the labels of its nearest labeled neighbours. The three doubts are averaged, so a
    label that the data's layout and the other labels both contradict comes first."""
    ranks = (rankdata(scores) - 1) / max(len(scores) - 1, 1)
    labeled = np.flatnonzero(semi_targets != 0)
    normal = semi_targets[labeled] == 1
    doubt = np.where(normal, ranks[labeled], 1 - ranks[labeled])
    others = _out_of_fold_anomalous(X, semi_targets, labeled) if X is not None else None
    if others is not None:
        neighbours = _neighbours_anomalous(X, semi_targets, labeled)
        doubt = (doubt + np.where(normal, others, 1 - others) + np.where(normal, neighbours, 1 - neighbours)) / 3
    order = labeled[np.argsort(-doubt, kind="stable")][:k]
    return [Doubt(int(i), "normal" if semi_targets[i] == 1 else "anomalous", float(ranks[i])) for i in order]


@dataclass(frozen=True)
class StopHint:
    """Whether the last labels changed the detector, with the numbers behind it."""

    rank_correlation: float | None  # of the scores with the previous round's
    predicted: float | None  # share of the last queue's answers the previous round already predicted
    recall_change: float | None  # of the estimated recall since the previous round
    stop: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.rank_correlation is not None:
            parts.append(f"scores rank-correlate {self.rank_correlation:.3f} with the last round's")
        if self.predicted is not None:
            parts.append(f"the detector had predicted {self.predicted:.0%} of your last answers")
        if self.recall_change is not None:
            parts.append(f"the estimated recall moved by {self.recall_change:.2f}")
        verdict = (
            "More labels no longer change the detector much: you can stop."
            if self.stop
            else ("Labels are still changing the detector.")
        )
        return verdict + (" (" + "; ".join(parts) + ")" if parts else "")


def stop_hint(
    previous_scores: np.ndarray | None,
    scores: np.ndarray,
    previous_threshold: float | None,
    answered: dict[int, str],
    previous_recall: float | None = None,
    recall: float | None = None,
) -> StopHint:
    """``answered`` holds the labels given to the previous round's queue (index -> label)."""
    correlation = predicted = change = None
    if previous_scores is not None and len(previous_scores) == len(scores):
        correlation = float(spearmanr(previous_scores, scores).statistic)
    if previous_scores is not None and previous_threshold is not None and answered:
        said = np.array([label == "anomalous" for label in answered.values()])
        foreseen = flag(previous_scores[list(answered)], previous_threshold).astype(bool)
        predicted = float((said == foreseen).mean())
    if previous_recall is not None and recall is not None:
        change = abs(recall - previous_recall)
    stop = (
        correlation is not None
        and predicted is not None
        and correlation >= STEADY_RANKS
        and predicted >= PREDICTED_ANSWERS
        and (change is None or change <= STEADY_RECALL)
    )
    return StopHint(correlation, predicted, change, bool(stop))
