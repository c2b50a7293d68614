"""What the ensemble makes of the labels: the supervised member (a class-balanced logistic regression),
its out-of-fold view of the labels, and the targets the members are trained and ranked on.

Out of fold, because in fold a classifier always agrees with the labels it learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from deepsad_core.detectors.fusion import labeled_auc, robust_scale, standardise

__all__ = [
    "SupervisedFit",
    "fit_logistic",
    "fit_supervised_member",
    "out_of_fold",
    "prequential_scores",
    "pseudo_targets",
    "ranking_targets",
]

RANKING_SAMPLE = 4096  # unlabeled rows that stand in for normals while fewer than two are labeled


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000)


def fit_logistic(X: np.ndarray, anomalous: np.ndarray, C: float = 1.0) -> LogisticRegression:
    """A class-balanced logistic regression of "anomalous" on the rows ``X``."""
    return _logistic(C).fit(X, anomalous)


def out_of_fold(
    X: np.ndarray, anomalous: np.ndarray, *, C: float = 1.0, seed: int = 0, method: str = "decision_function"
) -> np.ndarray | None:
    """Each row's prediction (``method``) by a logistic regression fitted on the other folds (up to five,
    stratified); ``None`` with fewer than two rows of either kind."""
    folds = int(min(5, anomalous.sum(), (~anomalous).sum()))
    if folds < 2:
        return None
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    out = cross_val_predict(_logistic(C), X, anomalous, cv=cv, method=method)
    return out[:, 1] if method == "predict_proba" else out


def pseudo_targets(prior: np.ndarray, share: float) -> np.ndarray:
    """Before any label: the ``share`` of samples that the label-free members score highest, as -1."""
    targets = np.zeros(len(prior), dtype=np.int64)
    if share > 0:
        targets[prior >= np.quantile(prior, 1 - share)] = -1
    return targets


def ranking_targets(semi: np.ndarray, seed: int) -> np.ndarray:
    """What the members are ranked on: ``semi``, or with fewer than two labeled normals the labeled
    anomalies against unlabeled samples as normals (at most 4,096 of them), whose AUC against the
    unlabeled rises with the true AUC."""
    if (semi == 1).sum() >= 2 or not (semi == -1).any():
        return semi
    unlabeled = np.flatnonzero(semi == 0)
    if len(unlabeled) > RANKING_SAMPLE:
        unlabeled = np.random.default_rng(seed).choice(unlabeled, RANKING_SAMPLE, replace=False)
    ranking = np.where(semi == -1, -1, 0)
    ranking[unlabeled] = 1
    return ranking


def prequential_scores(semi: np.ndarray, kept: np.ndarray | None, before: np.ndarray | None) -> np.ndarray:
    """Deep SAD's ``z`` of each labeled sample from the last fit before its label (NaN where unknown):
    ``kept`` is what the last fit kept, ``before`` its ``z`` of every sample (both ``None`` when the data
    changed and nothing carries over)."""
    if kept is None or before is None:
        return np.full(len(semi), np.nan)
    out = kept.copy()
    new = (semi != 0) & np.isnan(out)
    out[new] = before[new]
    return out


@dataclass(frozen=True)
class SupervisedFit:
    """The supervised member as a fit leaves it: the model, its ``z`` of every row, its scale, its labeled
    AUC, and its ``z`` of each labeled row from the folds that did not train on it (NaN elsewhere)."""

    model: LogisticRegression
    z: np.ndarray
    scale: tuple[float, float]
    auc: float | None  # out of fold: in fold it would always look perfect
    held_out_z: np.ndarray | None = None


def fit_supervised_member(flat: np.ndarray, ranking: np.ndarray, C: float, seed: int) -> SupervisedFit | None:
    """The logistic regression on the ranking targets (``None`` without both kinds among them)."""
    if not ((ranking == -1).any() and (ranking == 1).any()):
        return None
    labeled = ranking != 0
    y = ranking[labeled] == -1
    model = fit_logistic(flat[labeled], y, C)
    raw = model.decision_function(flat)
    scale = robust_scale(raw)
    oof = out_of_fold(flat[labeled], y, C=C, seed=seed)
    if oof is None:
        return SupervisedFit(model, standardise(raw, scale), scale, None)
    held_out = np.full(len(flat), np.nan)
    held_out[labeled] = standardise(oof, scale)
    auc = labeled_auc(held_out[labeled], np.where(y, -1, 1))
    return SupervisedFit(model, standardise(raw, scale), scale, auc, held_out)
