"""The ensemble's label-free members: an IsolationForest and the kNN distance to a small reference
sample of the training rows. Their raw scores point the ensemble's way: higher = more anomalous (the
forest's decision is flipped here, once)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from deepsad_core.detectors.knn import knn_scores

__all__ = ["fit_label_free", "forest_scores", "label_free_raw"]


def fit_label_free(
    flat: np.ndarray, rows: np.ndarray, *, n_estimators: int, max_reference: int, seed: int
) -> tuple[IsolationForest, np.ndarray, np.ndarray]:
    """The forest fitted on ``flat[rows]``, and the kNN reference: at most ``max_reference`` of those rows
    (sorted indices into ``flat``, and their values)."""
    capped = len(rows) < len(flat)
    iforest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(flat[rows] if capped else flat)
    rng = np.random.default_rng(seed)
    reference_index = rows[np.sort(rng.choice(len(rows), min(max_reference, len(rows)), replace=False))]
    return iforest, np.ascontiguousarray(flat[reference_index]), reference_index


def forest_scores(forest: IsolationForest, flat: np.ndarray) -> np.ndarray:
    """An IsolationForest's anomaly scores, pointing the ensemble's way (scikit-learn's: higher = normal)."""
    return -forest.decision_function(flat)


def label_free_raw(
    flat: np.ndarray, iforest: IsolationForest, reference: np.ndarray, k: int, own_rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Both members' raw scores of ``flat``; the reference's own rows (``own_rows``) skip themselves."""
    return {"iforest": forest_scores(iforest, flat), "knn": knn_scores(flat, reference, k, own_rows)}
