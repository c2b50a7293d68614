"""How the ensemble's members become one score: pure functions of their scores and the labels.

Each member's raw score is standardised by its median and interquartile range on the training data
(:func:`robust_scale`); a member weighs ``(2 (AUC - 0.5))^power`` by its ROC-AUC over the labeled
samples (:func:`labeled_auc`, :func:`label_weights`); the weighted mean ``m`` of the standardised
scores becomes the score ``exp(10 tanh(m / 10))`` (:func:`bounded`, :func:`fuse`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

__all__ = [
    "MEMBERS",
    "SCORE_BOUND",
    "bounded",
    "fuse",
    "fusion_weights",
    "label_weights",
    "labeled_auc",
    "robust_scale",
    "standardise",
    "teacher_scores",
]

MEMBERS = ("iforest", "knn", "deepsad", "supervised")  # the ensemble's members, in the order they are fused
SCORE_BOUND = 10.0  # the score lies in [e^-SCORE_BOUND, e^SCORE_BOUND]
_Z_CLIP = 80.0  # the exp fusion of format 1: exp(80) still fits float32


def robust_scale(scores: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range of a member's training scores: its ``z`` is (s - median) / iqr.

    The range is floored at a tenth of the mean absolute deviation from the median: where over half
    the rows score alike (repeated rows in a table of few distinct values give kNN distances of 0)
    the IQR is 0, and dividing by any tiny floor would blow round-off up into whole units of ``z``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    q25, median, q75 = np.quantile(scores, [0.25, 0.5, 0.75])
    deviation = float(np.mean(np.abs(scores - median)))
    spread = max(float(q75 - q25), 0.1 * deviation, 1e-6 * max(abs(float(median)), 1.0), 1e-12)
    return float(median), spread


def standardise(raw: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """A member's ``z``: (raw - median) / spread, in float64."""
    return (np.asarray(raw, dtype=np.float64) - scale[0]) / scale[1]


def labeled_auc(scores: np.ndarray, semi_targets: np.ndarray) -> float | None:
    """ROC-AUC of ``scores`` over the labeled samples (anomaly = positive); None without both kinds."""
    labeled = semi_targets != 0
    anomalous = semi_targets[labeled] == -1
    if anomalous.all() or not anomalous.any():
        return None
    return float(roc_auc_score(anomalous, scores[labeled]))


def label_weights(aucs: dict[str, float | None], power: float) -> dict[str, float]:
    """``(2 (AUC - 0.5))^power`` per member with an AUC; 0 for members the labels rank no better than chance."""
    return {name: (2 * max(auc - 0.5, 0.0)) ** power for name, auc in aucs.items() if auc is not None}


def fusion_weights(
    aucs: dict[str, float | None], semi_targets: np.ndarray, power: float, prior: Sequence[tuple[str, float]]
) -> dict[str, float]:
    """The members' weights: :func:`label_weights` once two anomalies are labeled, else (or where the
    labels trust no member) the ``prior`` weights; members of weight 0 left out."""
    weights = label_weights(aucs, power) if (semi_targets == -1).sum() >= 2 else {}
    if not sum(weights.values()):
        weights = {name: float(w) for name, w in prior if w > 0}
    return {name: w for name, w in weights.items() if w > 0}


def teacher_scores(z: dict[str, np.ndarray], aucs: dict[str, float | None], power: float) -> np.ndarray:
    """What the members other than Deep SAD say together, to teach it: their :func:`label_weights` mean
    ``z``, or, before the labels rank any of them, the sum of their ``z``."""
    weights = label_weights({name: auc for name, auc in aucs.items() if name != "deepsad"}, power)
    if sum(weights.values()) > 0:
        return sum(w * z[name] for name, w in weights.items()) / sum(weights.values())
    return sum(z[name] for name in z if name != "deepsad")


def bounded(mean: np.ndarray | torch.Tensor, fusion: str = "bounded") -> np.ndarray | torch.Tensor:
    """The score of a weighted mean ``m`` of ``z``: ``exp(B tanh(m / B))``, B = :data:`SCORE_BOUND`
    (``fusion="exp"``: ``exp(m)`` clipped at +-80, how format-1 models scored)."""
    lib = torch if isinstance(mean, torch.Tensor) else np
    if fusion == "exp":
        return lib.exp(lib.clip(mean, -_Z_CLIP, _Z_CLIP))
    return lib.exp(SCORE_BOUND * lib.tanh(mean / SCORE_BOUND))


def fuse(z: dict[str, np.ndarray], weights: dict[str, float], fusion: str = "bounded") -> np.ndarray:
    """The fused score: :func:`bounded` of ``sum w z / sum w`` over the members that have a weight."""
    total = sum(weights.values())
    return bounded(sum(w * z[name] for name, w in weights.items()) / total, fusion)
