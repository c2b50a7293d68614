"""Choosing the score threshold from the expert's labels, and the trade-off behind it.

Deep SAD has no threshold of its own: it is the user's choice. With labels of both kinds the
threshold maximises F1 over the labeled samples (or meets a target false-positive rate on labeled
normals); otherwise it flags the ``contamination`` share of all samples. Truth never enters here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "ThresholdChoice",
    "choose_threshold",
    "contamination_threshold",
    "flag",
    "threshold_for_counts",
    "tradeoff_curve",
]


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The one scores -> decisions step: 1 = anomaly (score above the threshold), 0 = normal."""
    return (np.asarray(scores) > threshold).astype(np.int64)


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The score above which the top ``contamination`` share of ``scores`` lies."""
    return float(np.quantile(scores, 1 - contamination))


def threshold_for_counts(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each count ``k``, the threshold that flags the ``k`` highest scores (fewer where scores tie):
    the ``k``-th highest score itself, or the highest for ``k = 0``. A threshold a person picks by the
    share it flags, whatever the scale of the scores."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    return ordered[np.clip(np.asarray(counts, dtype=np.int64), 0, len(ordered) - 1)]


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold on the scores and how it was chosen.

    Parameters
    ----------
    value : float
        Scores above it are flagged.
    method : {"best_f1", "target_fpr", "contamination", ...}
        The rule that chose it: the best F1 on the labels, a false-positive rate on the labeled
        normals, or the expected anomaly share when the labels cannot decide; or who chose it by hand.
    detail : str
        The figures behind the choice, in words.
    """

    value: float
    method: str
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ThresholdChoice:
        return cls(float(data["value"]), str(data["method"]), str(data.get("detail", "")))


def _labeled(scores: np.ndarray, semi_targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = semi_targets != 0
    return scores[mask], (semi_targets[mask] == -1).astype(int)  # 1 = labeled anomalous


def choose_threshold(
    scores: np.ndarray,
    semi_targets: np.ndarray,
    *,
    method: str = "best_f1",
    contamination: float = 0.05,
    target_fpr: float = 0.05,
) -> ThresholdChoice:
    """The threshold for ``scores`` given the labels (+1 normal, -1 anomalous, 0 unlabeled)."""
    if method not in ("best_f1", "target_fpr"):
        raise ValueError(f"method must be 'best_f1' or 'target_fpr'; got {method!r}")
    if not 0 < contamination < 1:
        raise ValueError(f"contamination must be in (0, 1); got {contamination!r}")
    s, y = _labeled(np.asarray(scores, dtype=np.float64), np.asarray(semi_targets))
    if y.sum() and (y == 0).sum():
        if method == "target_fpr":
            normals = np.sort(s[y == 0])
            value = float(np.quantile(normals, 1 - target_fpr))
            return ThresholdChoice(
                value, "target_fpr", f"flags at most {target_fpr:.0%} of {len(normals)} labeled normals"
            )
        from sklearn.metrics import precision_recall_curve  # here: a bundle's reader needs only flag()

        precision, recall, thresholds = precision_recall_curve(y, s)
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        best = int(np.argmax(f1))
        # precision_recall_curve flags score >= t; predict() flags score > threshold: step just below t
        value = float(np.nextafter(thresholds[best], -np.inf))
        return ThresholdChoice(
            value,
            "best_f1",
            f"best F1 {f1[best]:.2f} on {len(y)} labeled samples (precision {precision[best]:.2f}, "
            f"recall {recall[best]:.2f})",
        )
    value = contamination_threshold(scores, contamination)
    why = "no labels yet" if not len(y) else "labels of one kind only"
    return ThresholdChoice(value, "contamination", f"{why}: flags the top {contamination:.1%} of all samples")


def tradeoff_curve(
    scores: np.ndarray, semi_targets: np.ndarray, n_points: int = 200, include: Sequence[float] = ()
) -> pd.DataFrame:
    """Per candidate threshold: precision/recall/F1 on the labeled samples and how many samples it flags.

    Candidates are ``n_points`` quantiles of the scores, a step below each labeled sample's score
    (where the label-based figures change, so none of their steps is missed) and ``include`` (say the
    chosen threshold, so that it can be shown as it is: the tail between quantiles is sparse).
    Columns: ``threshold, flagged, precision, recall, f1, labeled_fpr`` (the label-based columns are
    NaN without labels of both kinds).
    """
    scores = np.asarray(scores, dtype=np.float64)
    s, y = _labeled(scores, np.asarray(semi_targets))
    candidates = np.unique(
        np.concatenate(
            [np.quantile(scores, np.linspace(0, 1, n_points)), np.nextafter(s, -np.inf), np.asarray(include, float)]
        )
    )
    ordered = np.sort(scores)
    flagged = len(scores) - np.searchsorted(ordered, candidates, side="right")
    table = pd.DataFrame({"threshold": candidates, "flagged": flagged})
    if y.sum() and (y == 0).sum():
        hits = s[None, :] > candidates[:, None]
        tp = (hits & (y == 1)).sum(axis=1)
        fp = (hits & (y == 0)).sum(axis=1)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = tp / y.sum()
        table["precision"] = precision
        table["recall"] = recall
        table["f1"] = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        table["labeled_fpr"] = fp / (y == 0).sum()
    else:
        table[["precision", "recall", "f1", "labeled_fpr"]] = np.nan
    return table
