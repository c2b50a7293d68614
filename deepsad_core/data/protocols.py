"""The paper's experimental protocols: disjoint train/test splits and semi-supervised training sets.

Shared by the benchmarks and the labeling simulation. Two of the reference code's faults are
avoided on purpose: labeled and unlabeled anomalies are drawn disjointly, and train and test are
split once (the reference ODDS loader lets ~60 % of test rows also appear in training).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

__all__ = ["TrainingSet", "scale_like_paper", "semisupervised_training_set", "split_train_test"]


@dataclass(frozen=True)
class TrainingSet:
    """Rows chosen for training (``idx`` into the source arrays) and their semi-targets."""

    idx: np.ndarray
    semi_targets: np.ndarray

    @property
    def n_labeled_anomalies(self) -> int:
        return int((self.semi_targets == -1).sum())


def split_train_test(y: np.ndarray, seed: int, test_fraction: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Indices of one disjoint train/test split, each class split separately (stratified)."""
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def semisupervised_training_set(
    classes: np.ndarray,
    normal_classes: Iterable[int],
    known_anomaly_classes: Iterable[int],
    ratio_known_anomaly: float,
    ratio_pollution: float,
    rng: np.random.Generator,
) -> TrainingSet:
    """The paper's training set from class labels (as the reference's ``create_semisupervised_setting``).

    All normal samples are used, unlabeled. Unlabeled anomalies from every anomaly class make up
    ``ratio_pollution`` of the unlabeled part; labeled anomalies, drawn only from
    ``known_anomaly_classes`` and disjoint from the unlabeled ones, make up ``ratio_known_anomaly``
    of the whole training set. Counts are capped by what exists.
    """
    normal_mask = np.isin(classes, list(normal_classes))
    normal = np.flatnonzero(normal_mask)
    anomalies = np.flatnonzero(~normal_mask)
    known_pool = np.flatnonzero(~normal_mask & np.isin(classes, list(known_anomaly_classes)))

    n_unlabeled_anomaly = int(ratio_pollution / (1 - ratio_pollution) * len(normal))
    n_known = int(ratio_known_anomaly / (1 - ratio_known_anomaly) * (len(normal) + n_unlabeled_anomaly))
    known = rng.choice(known_pool, size=min(n_known, len(known_pool)), replace=False)
    rest = np.setdiff1d(anomalies, known)
    polluting = rng.choice(rest, size=min(n_unlabeled_anomaly, len(rest)), replace=False)

    idx = np.concatenate([normal, polluting, known])
    semi = np.concatenate(
        [np.zeros(len(normal) + len(polluting), dtype=np.int64), -np.ones(len(known), dtype=np.int64)]
    )
    order = rng.permutation(len(idx))
    return TrainingSet(idx[order], semi[order])


def scale_like_paper(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Standard scaler then [0, 1] min-max scaler, both fitted on ``X_train``, applied to all."""
    scaler = make_pipeline(StandardScaler(), MinMaxScaler()).fit(X_train)
    return [scaler.transform(X).astype(np.float32) for X in (X_train, *others)]
